"""On-disk cache of per-layer results, keyed by diffID + reader versions, bounded in size.

A base layer shared by many images is downloaded and read once: later scans (in this process
or the next one) get its :class:`LayerContents` from disk. Concurrent scans that need the same
layer share one download (single flight). Eviction is least-recently-used by file mtime,
which reads refresh.

A cache that cannot be written is no cache, never a failed scan: the constructor raises
``OSError`` when the directory cannot take a file (read-only root filesystem, foreign owner),
so the caller runs without one; a write or read that fails later (disk full, the directory
remounted or removed) is logged once and the cache stops writing, and the scan goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from cr_agent.image.layer import LayerContents
from shared.logging import get_logger

log = get_logger(__name__)

#: bump when LayerContents' meaning changes for the same layer bytes and readers
ENGINE_VERSION = "1"


class LayerCache:
    def __init__(self, directory: str | os.PathLike[str], max_bytes: int = 2 << 30) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._entries: dict[str, tuple[int, float]] = {}  # name -> (size, last use)
        self._inflight: dict[str, asyncio.Future[LayerContents]] = {}
        self.hits = 0
        self.misses = 0
        #: False once a write failed: the cache still serves what it has, and adds nothing
        self.writable = True
        self._probe()
        for entry in os.scandir(self.directory):
            if entry.is_file() and entry.name.endswith(".layer"):
                st = entry.stat()
                self._entries[entry.name] = (st.st_size, st.st_mtime)

    def _probe(self) -> None:
        """Raise ``OSError`` unless a file can be created in the directory (mkdir succeeds on
        an existing directory of a read-only filesystem; only a write tells)."""
        probe = self.directory / f".probe-{os.getpid()}-{time.monotonic_ns()}"
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        os.unlink(probe)

    @property
    def total_bytes(self) -> int:
        return sum(size for size, _ in self._entries.values())

    @staticmethod
    def key(diff_id: str, readers: str) -> str:
        raw = f"{ENGINE_VERSION}|{diff_id}|{readers}".encode()
        return hashlib.sha256(raw).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.layer"

    def get(self, key: str) -> LayerContents | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self._entries.pop(path.name, None)
            return None
        except OSError as exc:  # unreadable entry: a miss, the layer is read from the registry
            log.warning("layer_cache_read_failed", entry=path.name, error=str(exc))
            self._entries.pop(path.name, None)
            return None
        try:
            contents = LayerContents.from_bytes(data)
        except (ValueError, KeyError) as exc:
            log.warning("layer_cache_corrupt", entry=path.name, error=str(exc))
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self._entries.pop(path.name, None)
            return None
        now = time.time()
        with contextlib.suppress(OSError):
            os.utime(path, (now, now))
        self._entries[path.name] = (len(data), now)
        return contents

    def put(self, key: str, contents: LayerContents) -> None:
        if not contents.complete or not self.writable:
            return  # a damaged read must not be served to the next image
        data = contents.to_bytes()
        if len(data) > self.max_bytes:
            return
        path = self._path(key)
        import tempfile  # only a cache that writes needs it; a cache hit spares the import

        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            self.writable = False
            log.warning(
                "layer cache not writable, scanning on without adding to it",
                directory=str(self.directory),
                error=str(exc),
            )
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            return
        self._entries[path.name] = (len(data), time.time())
        self._evict()

    def _evict(self) -> None:
        total = self.total_bytes
        if total <= self.max_bytes:
            return
        for name, (size, _) in sorted(self._entries.items(), key=lambda kv: kv[1][1]):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                (self.directory / name).unlink()
            del self._entries[name]
            total -= size

    async def get_or_load(
        self, key: str, loader: Callable[[], Awaitable[LayerContents]]
    ) -> tuple[LayerContents, bool]:
        """(contents, from_cache). Concurrent callers for one key share a single load."""
        cached = self.get(key)
        if cached is not None:
            self.hits += 1
            return cached, True
        pending = self._inflight.get(key)
        if pending is not None:
            self.hits += 1
            return await asyncio.shield(pending), True
        self.misses += 1
        future: asyncio.Future[LayerContents] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            contents = await loader()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(contents)
        self.put(key, contents)
        return contents, False
