"""Callbacks that could not be delivered, kept on disk until they are.

One JSON file per pending delivery, written atomically (temp file + rename), named so that
sorting the names gives the order they were produced in: results of a job stay ahead of its
``done``. The files hold callback bodies (scan results) and the callback URL, never a
registry credential.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shared.logging import get_logger

log = get_logger(__name__)


@dataclass(slots=True)
class Delivery:
    """One callback POST: where, what, and the key the receiver de-duplicates on."""

    url: str
    body: bytes
    idempotency_key: str
    job_id: str
    kind: str  # "result" | "done"
    attempts: int = 0
    first_failure: float | None = None
    last_error: str | None = None
    seq: int = field(default_factory=time.time_ns)

    def to_json(self) -> str:
        data = asdict(self)
        data["body"] = base64.b64encode(self.body).decode()
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Delivery:
        data = json.loads(text)
        data["body"] = base64.b64decode(data["body"])
        return cls(**data)


class Spool:
    """A directory of pending :class:`Delivery` files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, delivery: Delivery) -> Path:
        safe_key = _safe(delivery.idempotency_key)
        return self.directory / f"{delivery.seq:020d}-{_safe(delivery.job_id)}--{safe_key}.json"

    def put(self, delivery: Delivery) -> Path:
        path = self._path(delivery)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(delivery.to_json())
        os.replace(tmp, path)
        return path

    def holds(self, delivery: Delivery) -> bool:
        """Still waiting (not delivered meanwhile by someone else)."""
        return self._path(delivery).exists()

    def remove(self, delivery: Delivery) -> None:
        self._path(delivery).unlink(missing_ok=True)

    def pending(self) -> Iterator[Delivery]:
        """Every spooled delivery, oldest first, read one at a time (bodies can be megabytes
        each); unreadable files are set aside, not lost."""
        for path in sorted(self.directory.glob("*.json")):
            try:
                yield Delivery.from_json(path.read_text())
            except FileNotFoundError:
                continue  # delivered meanwhile
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.error("unreadable spool file set aside", file=path.name, error=str(exc))
                path.rename(path.with_suffix(".bad"))

    def count(self) -> int:
        return sum(1 for _ in self.directory.glob("*.json"))

    def count_for(self, job_id: str) -> int:
        """Deliveries of one job still waiting (from the file names; no file is read)."""
        return sum(1 for _ in self.directory.glob(f"*-{_safe(job_id)}--*.json"))


def _safe(text: str) -> str:
    return "".join(c for c in text if c.isalnum() or c in "-_.")
