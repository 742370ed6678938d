"""What makes each SBOM document unique: a random UUID and the time it was written."""

from __future__ import annotations

import datetime as dt
import uuid

ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"


def random_uuid() -> str:
    """A version-4 (random) UUID in its canonical text form."""
    return str(uuid.uuid4())


def utc_timestamp(when: dt.datetime | None = None) -> str:
    """``when`` (default: now) as ``2024-05-01T12:00:00Z``."""
    return (when or dt.datetime.now(dt.UTC)).strftime(ISO_UTC)
