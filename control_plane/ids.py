"""Identifiers: time-ordered UUIDs (RFC 9562 version 7).

Rows are listed in id order and pages are cut by id (keyset pagination), so an id that grows
with time gives "oldest first" for free and keeps inserts at the end of each index.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_stamp = 0
_last_seq = 0


def new_id() -> uuid.UUID:
    """A version-7 UUID: 48-bit Unix milliseconds, a 12-bit sequence, 62 random bits.

    Ids made by one process are strictly increasing: within one millisecond the sequence
    (``rand_a`` in RFC 9562, method 1) counts up from a random start.
    """
    global _last_stamp, _last_seq
    rand = int.from_bytes(os.urandom(8), "big")
    with _lock:
        stamp = time.time_ns() // 1_000_000
        if stamp <= _last_stamp:
            stamp, seq = _last_stamp, _last_seq + 1
            if seq > 0xFFF:
                stamp, seq = stamp + 1, 0
        else:
            seq = rand >> 53  # 11 random bits: leaves room to count up in the same millisecond
        _last_stamp, _last_seq = stamp, seq
    value = (stamp << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return uuid.UUID(int=value)
