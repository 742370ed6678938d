"""What makes each SBOM document unique: a random UUID and the time it was written.

Written without the ``uuid`` and ``datetime`` modules, whose imports (``uuid`` pulls in
``platform``) cost a one-shot ``cr-agent scan`` about 3 ms before it writes anything.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datetime as dt

ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"


def random_uuid() -> str:
    """A version-4 (random) UUID in its canonical text form, as ``str(uuid.uuid4())``."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def utc_timestamp(when: dt.datetime | None = None) -> str:
    """``when`` (default: now) as ``2024-05-01T12:00:00Z``."""
    if when is None:
        return time.strftime(ISO_UTC, time.gmtime())
    return when.strftime(ISO_UTC)
