"""Ids are UUIDv7 and strictly increasing in one process (pages are cut by id)."""

from __future__ import annotations

import itertools
import time

from control_plane.ids import new_id


def test_ids_are_version_7_and_strictly_increasing_within_a_millisecond() -> None:
    ids = [new_id() for _ in range(20000)]  # far more than one per millisecond
    assert all(i.version == 7 and i.variant == "specified in RFC 4122" for i in ids)
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert all(a.hex < b.hex for a, b in itertools.pairwise(ids))  # SQLite's text order
    stamp_ms = ids[-1].int >> 80
    assert abs(stamp_ms - time.time() * 1000) < 60_000
