"""The rpm header blob, as every rpmdb backend stores it, and the package it describes.

Layout (all integers big-endian): ``il`` (entry count) and ``dl`` (data length), then ``il``
16-byte index entries ``tag, type, offset, count``, then ``dl`` bytes of data. Region tags
(61-63) describe signed ranges of the blob and carry no package facts, so they are skipped.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from cr_agent.catalogers.base import Package

# Tag numbers from rpm's rpmtag.h.
TAG_NAME = 1000
TAG_VERSION = 1001
TAG_RELEASE = 1002
TAG_EPOCH = 1003
TAG_SUMMARY = 1004
TAG_SIZE = 1009
TAG_VENDOR = 1011
TAG_LICENSE = 1014
TAG_ARCH = 1022
TAG_SOURCERPM = 1044
TAG_MODULARITYLABEL = 5096

# Entry types.
TYPE_NULL = 0
TYPE_CHAR = 1
TYPE_INT8 = 2
TYPE_INT16 = 3
TYPE_INT32 = 4
TYPE_INT64 = 5
TYPE_STRING = 6
TYPE_BIN = 7
TYPE_STRING_ARRAY = 8
TYPE_I18NSTRING = 9

_INT_FORMATS = {TYPE_CHAR: "B", TYPE_INT8: "B", TYPE_INT16: "H", TYPE_INT32: "I", TYPE_INT64: "Q"}
_STRING_TYPES = (TYPE_STRING, TYPE_STRING_ARRAY, TYPE_I18NSTRING)

# rpm's own limits (header_internal.h): beyond these a blob is corrupt, not just big.
MAX_TAGS = 0xFFFF
MAX_DATA = 0x0FFFFFFF
_ENTRY = struct.Struct(">iIiI")  # tag, type, offset, count


class HeaderError(ValueError):
    """The blob is not a well-formed rpm header; the message says what is wrong."""


Value = str | int | bytes | tuple[str, ...] | tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RpmHeader:
    """Decoded entries of one header, by tag number."""

    entries: Mapping[int, Value]

    def string(self, tag: int) -> str | None:
        value = self.entries.get(tag)
        if isinstance(value, str):
            return value
        if isinstance(value, tuple) and value and isinstance(value[0], str):
            return value[0]  # i18n strings and arrays: the first (C locale) value
        return None

    def integer(self, tag: int) -> int | None:
        value = self.entries.get(tag)
        if isinstance(value, tuple) and value and isinstance(value[0], int):
            return value[0]
        if isinstance(value, int):
            return value
        return None


def _strings(data: bytes, offset: int, count: int, tag: int) -> tuple[str, ...]:
    out = []
    position = offset
    for _ in range(count):
        end = data.find(b"\x00", position)
        if end < 0:
            raise HeaderError(f"tag {tag}: string at data offset {position} is not terminated")
        out.append(data[position:end].decode("utf-8", errors="replace"))
        position = end + 1
    return tuple(out)


def parse_header(blob: bytes | memoryview, wanted: frozenset[int] | None = None) -> RpmHeader:
    """Decode the entries of ``blob`` (all of them, or only the ``wanted`` tags)."""
    blob = bytes(blob)
    if len(blob) < 8:
        raise HeaderError(f"header is {len(blob)} bytes, shorter than its 8-byte preamble")
    il, dl = struct.unpack_from(">II", blob, 0)
    if il == 0 or il > MAX_TAGS:
        raise HeaderError(f"header claims {il} entries (allowed 1..{MAX_TAGS})")
    if dl > MAX_DATA:
        raise HeaderError(f"header claims {dl} data bytes (limit {MAX_DATA})")
    data_start = 8 + 16 * il
    if data_start + dl > len(blob):
        raise HeaderError(
            f"header needs {data_start + dl} bytes for {il} entries and {dl} data bytes, "
            f"blob has {len(blob)}"
        )
    data = blob[data_start : data_start + dl]
    entries: dict[int, Value] = {}
    for index in range(il):
        tag, kind, offset, count = _ENTRY.unpack_from(blob, 8 + 16 * index)
        if 61 <= tag <= 63 or (wanted is not None and tag not in wanted):
            continue
        if offset < 0 or offset > dl:
            raise HeaderError(f"tag {tag}: data offset {offset} outside 0..{dl}")
        if count == 0 or count > dl:
            raise HeaderError(f"tag {tag}: count {count} impossible for {dl} data bytes")
        if kind in _STRING_TYPES:
            if kind == TYPE_STRING and count != 1:
                raise HeaderError(f"tag {tag}: STRING entry with count {count}")
            values = _strings(data, offset, count, tag)
            entries[tag] = values[0] if kind == TYPE_STRING else values
        elif kind in _INT_FORMATS:
            fmt = _INT_FORMATS[kind]
            size = struct.calcsize(fmt)
            if offset + size * count > dl:
                raise HeaderError(f"tag {tag}: {count} integers at {offset} overrun the data")
            entries[tag] = struct.unpack_from(f">{count}{fmt}", data, offset)
        elif kind == TYPE_BIN:
            if offset + count > dl:
                raise HeaderError(f"tag {tag}: {count} bytes at {offset} overrun the data")
            entries[tag] = data[offset : offset + count]
        elif kind != TYPE_NULL:
            raise HeaderError(f"tag {tag}: unknown entry type {kind}")
    return RpmHeader(entries)


_PACKAGE_TAGS = frozenset(
    {
        TAG_NAME,
        TAG_VERSION,
        TAG_RELEASE,
        TAG_EPOCH,
        TAG_SIZE,
        TAG_VENDOR,
        TAG_LICENSE,
        TAG_ARCH,
        TAG_SOURCERPM,
        TAG_MODULARITYLABEL,
    }
)


def split_source_rpm(sourcerpm: str) -> tuple[str, str, str] | None:
    """``glibc-2.31-9.3.2.src.rpm`` -> (``glibc``, ``2.31``, ``9.3.2``); None if not that shape."""
    for suffix in (".src.rpm", ".nosrc.rpm"):
        if sourcerpm.endswith(suffix):
            stem = sourcerpm[: -len(suffix)]
            break
    else:
        return None
    parts = stem.rsplit("-", 2)  # names may contain '-', version and release may not
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def package_from_header(blob: bytes | memoryview, database: str) -> Package:
    """The package a header blob describes; HeaderError if it is malformed or has no name."""
    header = parse_header(blob, _PACKAGE_TAGS)
    name = header.string(TAG_NAME)
    version = header.string(TAG_VERSION)
    if not name or version is None:
        raise HeaderError("header has no NAME or VERSION")
    sourcerpm = header.string(TAG_SOURCERPM)
    source = split_source_rpm(sourcerpm) if sourcerpm else None
    license_text = header.string(TAG_LICENSE)
    extra = [
        (key, value)
        for key, value in (
            ("sourcerpm", sourcerpm),
            ("vendor", header.string(TAG_VENDOR)),
            ("modularity_label", header.string(TAG_MODULARITYLABEL)),
        )
        if value and value != "(none)"
    ]
    size = header.integer(TAG_SIZE)
    if size is not None:
        extra.append(("size", str(size)))
    return Package(
        type="rpm",
        name=name,
        version=version,
        epoch=header.integer(TAG_EPOCH),
        release=header.string(TAG_RELEASE),
        arch=header.string(TAG_ARCH),
        source_name=source[0] if source else None,
        source_version=f"{source[1]}-{source[2]}" if source else None,
        licenses=(license_text,) if license_text else (),
        database=database,
        extra=tuple(extra),
    )
