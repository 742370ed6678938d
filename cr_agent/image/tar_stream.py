"""A push-based tar reader (sans-I/O): feed bytes, get entries.

Understands ustar, GNU (long names ``L``/``K``, base-256 sizes) and PAX (``x`` headers for
path, linkpath, size). Only entries the caller selects have their data kept; everything else is
skipped by counting bytes, so memory stays flat however large the layer is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from zlib import adler32

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)

REGULAR = "file"
HARDLINK = "hardlink"
SYMLINK = "symlink"
DIRECTORY = "dir"
OTHER = "other"

_KINDS = {
    b"0": REGULAR,
    b"\0": REGULAR,
    b"7": REGULAR,
    b"1": HARDLINK,
    b"2": SYMLINK,
    b"5": DIRECTORY,
    b"3": OTHER,
    b"4": OTHER,
    b"6": OTHER,
}


class TarError(ValueError):
    """The tar stream is malformed; the message names the offset and the problem."""


@dataclass(frozen=True, slots=True)
class TarEntry:
    """One member's header, PAX and GNU extensions applied."""

    name: str
    kind: str
    size: int
    linkname: str
    mode: int


def _octal(field: bytes, what: str, offset: int) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field[1:], "big")
        if field[0] & 0x40:
            raise TarError(f"negative {what} in tar header at offset {offset}")
        return value
    text = field.partition(b"\0")[0]
    try:
        return int(text, 8)  # int() itself ignores the spaces some writers pad with
    except ValueError:
        text = text.strip(b" ")
        if not text:
            return 0
        raise TarError(f"bad {what} field {text[:20]!r} in tar header at offset {offset}") from None


def _text(field: bytes) -> str:
    return field.partition(b"\0")[0].decode("utf-8", "surrogateescape")


def _byte_sum(block: bytes) -> int:
    """Sum of a header's 512 bytes, counting the checksum field as spaces.

    Adler-32's first half is the byte sum modulo 65521; over 256 bytes (at most 65280) it is
    the exact sum, and zlib computes it in C instead of a Python loop over 512 ints.
    """
    return (
        (adler32(block[:256], 0) & 0xFFFF)
        + (adler32(block[256:], 0) & 0xFFFF)
        - sum(block[148:156])
        + 8 * 32
    )


def _parse_pax(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            break
        if length <= 0:
            break
        record = data[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


class TarReader:
    """``select(entry)`` says whether to keep an entry's data; ``on_entry(entry, data)`` gets
    every entry (data is None when not kept)."""

    #: extended headers (PAX, GNU long names) bigger than this are refused
    MAX_META = 1 << 20

    def __init__(
        self,
        select: Callable[[TarEntry], bool],
        on_entry: Callable[[TarEntry, bytes | None], None],
    ) -> None:
        self._select = select
        self._on_entry = on_entry
        self._buf = bytearray()  # partial header, or kept data of the current entry
        self._state = "header"
        self._entry: TarEntry | None = None
        self._remaining = 0  # kept data bytes of the current entry still to come
        self._padding = 0
        self._skip = 0  # bytes to pass over (unwanted data and/or padding)
        self._skip_padding = 0  # how much of _skip is padding after the entry
        self._meta_kind: bytes | None = None
        self._pax: dict[str, str] = {}
        self._long_name: str | None = None
        self._long_link: str | None = None
        self.offset = 0
        self.ended = False
        self.entries = 0

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        pos, n = 0, len(view)
        while pos < n and not self.ended:
            state = self._state
            if state == "skip":  # data nobody wants, and padding: just count it
                take = min(self._skip, n - pos)
                pos += take
                self.offset += take
                self._skip -= take
                if self._skip == 0:
                    self._state = "header"
            elif state == "header":
                if not self._buf and n - pos >= BLOCK:
                    block = view[pos : pos + BLOCK].tobytes()
                    pos += BLOCK
                    self.offset += BLOCK
                    self._header(block)
                    continue
                take = min(BLOCK - len(self._buf), n - pos)
                self._buf += view[pos : pos + take]
                pos += take
                self.offset += take
                if len(self._buf) == BLOCK:
                    block = bytes(self._buf)
                    self._buf.clear()
                    self._header(block)
            else:  # "data": an entry (or extended header) whose bytes are kept
                take = min(self._remaining, n - pos)
                self._buf += view[pos : pos + take]
                pos += take
                self.offset += take
                self._remaining -= take
                if self._remaining == 0:
                    self._finish_data()

    def _header(self, block: bytes) -> None:
        # Runs once per tar entry, holding the GIL: numbers are parsed inline (the slow path,
        # _octal, handles base-256, padding and errors) and empty fields are not decoded.
        start = self.offset - BLOCK
        if block == ZERO_BLOCK:
            self.ended = True  # end-of-archive; trailing zero blocks and padding are ignored
            return
        try:
            stored = int(block[148:156].partition(b"\0")[0], 8)
        except ValueError:
            stored = _octal(block[148:156], "checksum", start)
        if stored != _byte_sum(block):
            signed = sum((b - 256 if b > 127 else b) for b in block[:148] + b" " * 8 + block[156:])
            if stored != signed:
                raise TarError(
                    f"tar header checksum mismatch at offset {start} (not a tar stream?)"
                )
        typeflag = block[156:157]
        try:
            size = int(block[124:136].partition(b"\0")[0], 8)
        except ValueError:
            size = _octal(block[124:136], "size", start)
        if typeflag in (b"x", b"g", b"L", b"K"):
            if size > self.MAX_META:
                raise TarError(f"extended tar header of {size} bytes at offset {start}")
            self._meta_kind = typeflag
            self._begin_data(None, size, keep=True)
            return
        name = block[:100].partition(b"\0")[0].decode("utf-8", "surrogateescape")
        if block[345] and block[257:263] == b"ustar\0":  # POSIX ustar: prefix field
            prefix = _text(block[345:500])
            name = f"{prefix}/{name}"
        linkname = _text(block[157:257]) if block[157] else ""
        if self._long_name is not None:
            name, self._long_name = self._long_name, None
        if self._long_link is not None:
            linkname, self._long_link = self._long_link, None
        if self._pax:
            name = self._pax.get("path", name)
            linkname = self._pax.get("linkpath", linkname)
            if "size" in self._pax:
                try:
                    size = int(self._pax["size"])
                except ValueError:
                    raise TarError(f"bad PAX size at offset {start}") from None
            self._pax = {}
        kind = _KINDS.get(typeflag, OTHER)
        if typeflag in (b"1", b"2", b"3", b"4", b"5", b"6"):
            size = 0  # links, devices, dirs and fifos carry no data whatever the header says
        try:
            mode = int(block[100:108].partition(b"\0")[0], 8)
        except ValueError:
            mode = _octal(block[100:108], "mode", start)
        entry = TarEntry(name, kind, size, linkname, mode)
        self.entries += 1
        keep = kind == REGULAR and self._select(entry)
        self._meta_kind = None
        self._begin_data(entry, size, keep)

    def _begin_data(self, entry: TarEntry | None, size: int, keep: bool) -> None:
        self._entry = entry
        self._padding = (-size) % BLOCK
        if keep:
            self._remaining = size
            if size == 0:
                self._finish_data()
            else:
                self._state = "data"
            return
        assert entry is not None  # extended headers are always kept
        self._on_entry(entry, None)
        self._entry = None
        self._skip = size + self._padding
        self._skip_padding = self._padding
        self._state = "skip" if self._skip else "header"

    def _finish_data(self) -> None:
        data = bytes(self._buf)
        self._buf.clear()
        if self._entry is None:  # an extended header's payload
            if self._meta_kind == b"x":
                self._pax.update(_parse_pax(data))
            elif self._meta_kind == b"L":
                self._long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif self._meta_kind == b"K":
                self._long_link = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            self._meta_kind = None
        else:
            self._on_entry(self._entry, data)
        self._entry = None
        self._skip = self._skip_padding = self._padding
        self._state = "skip" if self._skip else "header"

    def close(self) -> None:
        """Raise :class:`TarError` when the stream stopped inside an entry."""
        if self.ended:
            return
        inside = (
            self._state == "data"
            or (self._state == "header" and self._buf)
            or (self._state == "skip" and self._skip > self._skip_padding)
        )
        if inside:
            raise TarError(f"tar stream truncated at offset {self.offset} (inside an entry)")
        # some writers omit the end-of-archive blocks; ending on an entry boundary is accepted
