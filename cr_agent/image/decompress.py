"""Push-based layer decompression: gzip (isal when available), zstd, or none, sniffed from the
first bytes rather than trusted from the media type (BuildKit labels zstd layers with Docker's
gzip-era types; some registries relabel).

Output goes to a callback in pieces of bounded size, and the total is capped so a gzip or zstd
bomb stops at the limit instead of filling memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:  # isal inflates 2-3x faster than zlib; zlib has the same API
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal is a dependency, but keep working without it
    import zlib as _zlib  # type: ignore[no-redef]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PIECE = 1 << 20
_ZLIB_ERROR: Any = _zlib.error


class DecompressionError(Exception):
    """The compressed stream is damaged or truncated; the message says which."""


class LayerTooLarge(Exception):
    """Decompressed size passed the per-layer cap (a bomb, or a layer we won't read)."""


def sniff(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


class _ZstdSink:
    def __init__(self, owner: Decompressor) -> None:
        self._owner = owner

    def write(self, data: bytes) -> int:
        self._owner._emit(bytes(data))
        return len(data)


class Decompressor:
    """Feed compressed chunks; ``on_output`` receives the decompressed bytes in pieces."""

    def __init__(self, on_output: Callable[[bytes], None], *, limit: int) -> None:
        self._on_output = on_output
        self.limit = limit
        self.kind: str | None = None
        self.total_out = 0
        self._head = b""
        self._gz: Any = None  # isal_zlib (or zlib) Decompress object
        self._gz_done = False
        self._zstd: Any = None  # zstandard stream writer
        self._zstd_error: type[Exception] = Exception  # zstandard.ZstdError once imported

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        self.total_out += len(data)
        if self.total_out > self.limit:
            raise LayerTooLarge(f"decompressed size passed the {self.limit}-byte per-layer limit")
        self._on_output(data)

    def feed(self, chunk: bytes) -> None:
        if self.kind is None:
            self._head += chunk
            if len(self._head) < 4:
                return
            chunk, self._head = self._head, b""
            self._start(sniff(chunk))
        self._feed(chunk)

    def _start(self, kind: str) -> None:
        self.kind = kind
        if kind == "gzip":
            self._gz = _zlib.decompressobj(wbits=31)
        elif kind == "zstd":
            # imported on the first zstd layer: most images are gzip, and the import is ~2 ms
            import zstandard

            self._zstd_error = zstandard.ZstdError
            self._zstd = zstandard.ZstdDecompressor().stream_writer(
                _ZstdSink(self),  # type: ignore[arg-type]  # only write() is used
                write_size=PIECE,
                write_return_read=True,
            )

    def _feed(self, chunk: bytes) -> None:
        if self.kind == "none":
            self._emit(chunk)
        elif self.kind == "zstd":
            try:
                self._zstd.write(chunk)
            except self._zstd_error as exc:
                raise DecompressionError(f"zstd stream is damaged: {exc}") from None
        else:
            self._feed_gzip(chunk)

    def _feed_gzip(self, data: bytes) -> None:
        d = self._gz
        while data:
            if self._gz_done:
                # gzip may hold several members back to back; anything else after the end
                # (registry padding) is ignored
                if data.startswith(GZIP_MAGIC):
                    d = self._gz = _zlib.decompressobj(wbits=31)
                    self._gz_done = False
                else:
                    return
            try:
                out = d.decompress(data, PIECE)
            except _ZLIB_ERROR as exc:
                raise DecompressionError(f"gzip stream is damaged: {exc}") from None
            self._emit(out)
            if d.eof:
                self._gz_done = True
                data = d.unused_data
            else:
                data = d.unconsumed_tail

    def finish(self) -> None:
        """Flush; raises :class:`DecompressionError` when the stream ended early."""
        if self.kind is None:
            head, self._head = self._head, b""
            self._start(sniff(head))
            if head:
                self._feed(head)
        if self.kind == "gzip" and not self._gz_done:
            raise DecompressionError(
                "gzip stream ends before its end-of-stream marker (truncated layer)"
            )
        if self.kind == "zstd":
            try:
                self._zstd.flush()
            except self._zstd_error as exc:
                raise DecompressionError(f"zstd stream is damaged: {exc}") from None
