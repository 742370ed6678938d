"""Scan log files for secret values, in the forms a careless log line would carry them."""

from __future__ import annotations

import base64
import contextlib
import json
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path

from tests.support.eventually import eventually


def forms(secret: str) -> set[str]:
    raw = secret.encode()
    out = {
        secret,
        secret.lower(),
        urllib.parse.quote(secret, safe=""),
        json.dumps(secret)[1:-1],  # as it appears inside a JSON string
        base64.b64encode(raw).decode(),
    }
    return {f for f in out if len(f) >= 6}


def find_secrets(paths: Iterable[Path], secrets: Iterable[str]) -> list[str]:
    """Lines (file:number: form) that contain any secret; empty when the logs are clean."""
    wanted = {form: secret for secret in secrets for form in forms(secret)}
    hits = []
    for path in paths:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for form in wanted:
                if form in line:
                    hits.append(
                        f"{path.name}:{number}: contains a form of a secret ({form[:3]}...)"
                    )
    return hits


def wait_for_log(read: Callable[[], str], *needles: str, timeout: float = 10.0) -> str:
    """The log text once it holds every needle (or at the deadline, for the caller to assert).

    A process logs an exchange after it has answered, so a test that has just seen the answer
    may read the log a moment too early.
    """

    def holds_all() -> str:
        text = read()
        assert all(needle in text for needle in needles)
        return text

    with contextlib.suppress(AssertionError):
        return eventually(holds_all, timeout=timeout)
    return read()
