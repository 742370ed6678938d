"""The on-disk layer cache: LRU bound, corrupt entries, single flight, failures not cached."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from cr_agent.image.layer import LayerContents
from cr_agent.layer_cache import LayerCache
from tests.support.read_only import assert_unwritable, read_only_dir


def _contents(tag: bytes, size: int = 1000) -> LayerContents:
    return LayerContents(files={"etc/x": tag * size}, symlinks={"lib": "usr/lib"}, whiteouts=["a"])


def test_least_recently_used_entry_goes_first(tmp_path):
    cache = LayerCache(tmp_path, max_bytes=3600)
    for i, key in enumerate(("k0", "k1", "k2")):
        cache.put(key, _contents(bytes([65 + i])))
        # mtime resolution: make the order unambiguous
        os.utime(tmp_path / f"{key}.layer", (time.time() - 10 + i, time.time() - 10 + i))
        cache._entries[f"{key}.layer"] = (cache._entries[f"{key}.layer"][0], time.time() - 10 + i)
    assert cache.get("k0") is not None  # k0 is now the most recently used
    cache.put("k3", _contents(b"D"))
    assert cache.get("k1") is None
    assert cache.get("k0") == _contents(b"A")
    assert cache.get("k3") == _contents(b"D")
    # a new cache object on the same directory sees what is there
    assert LayerCache(tmp_path, max_bytes=3600).get("k3") == _contents(b"D")


def test_corrupt_entry_is_dropped_not_served(tmp_path):
    cache = LayerCache(tmp_path)
    cache.put("k", _contents(b"A"))
    (tmp_path / "k.layer").write_bytes(b"CRLAYER1 garbage")
    assert cache.get("k") is None
    assert not (tmp_path / "k.layer").exists()


def test_incomplete_layers_are_not_cached(tmp_path):
    cache = LayerCache(tmp_path)
    damaged = _contents(b"A")
    damaged.complete = False
    cache.put("k", damaged)
    assert cache.get("k") is None


async def test_single_flight_and_failures(tmp_path):
    cache = LayerCache(tmp_path)
    calls = 0
    gate = asyncio.Event()

    async def load() -> LayerContents:
        nonlocal calls
        calls += 1
        await gate.wait()
        return _contents(b"S")

    tasks = [asyncio.create_task(cache.get_or_load("key", load)) for _ in range(5)]
    await asyncio.sleep(0.01)  # all five reach the cache before the one load may finish
    gate.set()
    results = await asyncio.gather(*tasks)
    assert calls == 1
    assert sum(1 for _, hit in results if not hit) == 1
    assert all(c == _contents(b"S") for c, _ in results)

    async def boom() -> LayerContents:
        await asyncio.sleep(0.01)
        raise RuntimeError("registry went away")

    failing = [asyncio.create_task(cache.get_or_load("other", boom)) for _ in range(3)]
    outcomes = await asyncio.gather(*failing, return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    # nothing was cached, so the next caller loads again
    again, hit = await cache.get_or_load("other", load)
    assert not hit and again == _contents(b"S")


def test_key_depends_on_reader_versions():
    assert LayerCache.key("sha256:a", "dpkg:1") != LayerCache.key("sha256:a", "dpkg:2")
    assert LayerCache.key("sha256:a", "dpkg:1") == LayerCache.key("sha256:a", "dpkg:1")


@pytest.mark.parametrize("size", [0, 1, 5000])
def test_round_trip(size):
    c = LayerContents(
        files={"a": b"x" * size, "b/c": b""},
        hardlinks={"h": "a"},
        opaque_dirs=["o"],
        dirs=["d"],
        warnings=["w"],
        size=9,
        entries=3,
    )
    assert LayerContents.from_bytes(c.to_bytes()) == c


def test_a_directory_that_takes_no_file_is_refused_at_once(tmp_path):
    # mkdir succeeds on an existing directory of a read-only filesystem; only a write tells
    with read_only_dir(tmp_path / "ro") as directory:
        assert_unwritable(directory)
        with pytest.raises(OSError):
            LayerCache(directory)


def test_a_cache_that_turns_unwritable_keeps_serving_and_stops_adding(tmp_path):
    cache = LayerCache(tmp_path / "cache")
    cache.put("old", _contents(b"O"))
    with read_only_dir(tmp_path / "cache") as directory:
        assert_unwritable(directory)
        cache.put("new", _contents(b"N"))  # no exception: the scan goes on
        assert cache.writable is False
        assert cache.get("new") is None
        assert cache.get("old") == _contents(b"O")
        cache.put("newer", _contents(b"M"))  # not tried again
        assert not (directory / "newer.layer").exists()
