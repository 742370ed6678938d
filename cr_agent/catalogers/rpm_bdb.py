"""rpm's BerkeleyDB backend: the hash database ``Packages`` (RHEL/CentOS <= 8, SLES < 15 SP3).

No libdb: the file is read as pages. Page 0 is the hash metadata page (magic 0x00061561, in
the byte order of the machine that wrote it, which may not be ours). Every hash page holds
key/value item pairs; a header blob is nearly always too big for a page, so the value item is
an "off-page" reference to a chain of overflow pages. Walking all hash pages in file order,
rather than bucket by bucket, reads every record even when a bucket chain is damaged.

Each page is checked (number, type, item offsets, chain length); a bad page or chain costs
the records on it, with a warning, and never the whole database. Every loop is bounded by the
page count, so a cyclic chain cannot hang the reader.
"""

from __future__ import annotations

import struct

from cr_agent.catalogers.warning_limit import WarningLog

HASH_MAGIC = 0x00061561
PAGE_HEADER_SIZE = 26

# Page types (db_page.h).
P_INVALID = 0
P_HASH_UNSORTED = 2  # hash pages written by BDB < 4.6 (RHEL 5, SLES 11)
P_OVERFLOW = 7
P_HASHMETA = 8
P_HASH = 13
_HASH_PAGES = (P_HASH, P_HASH_UNSORTED)

# Hash item types.
H_KEYDATA = 1
H_DUPLICATE = 2
H_OFFPAGE = 3
H_OFFDUP = 4

_VALID_PAGE_SIZES = frozenset(1 << n for n in range(9, 17))  # 512 B .. 64 KiB


class BdbError(ValueError):
    """Something in the file is not a well-formed BerkeleyDB hash structure."""


def byte_order(data: bytes) -> str | None:
    """``<`` or ``>`` if ``data`` starts with a BerkeleyDB hash meta page, else None."""
    if len(data) < 16:
        return None
    for order in ("<", ">"):
        if struct.unpack_from(f"{order}I", data, 12)[0] == HASH_MAGIC:
            return order
    return None


def is_bdb_hash(data: bytes) -> bool:
    return byte_order(data) is not None


class _Reader:
    def __init__(self, data: bytes, order: str, page_size: int, page_count: int) -> None:
        self.data = memoryview(data)
        self.order = order
        self.page_size = page_size
        self.page_count = page_count
        self.u16 = struct.Struct(f"{order}H")
        self.u32 = struct.Struct(f"{order}I")
        self.records = 0  # key/value pairs read whole, compared with the meta page's count

    def page_offset(self, pgno: int, expected_types: tuple[int, ...]) -> int:
        if not 0 < pgno < self.page_count:
            raise BdbError(f"page {pgno} is outside the file's {self.page_count} pages")
        offset = pgno * self.page_size
        stored = self.u32.unpack_from(self.data, offset + 8)[0]
        if stored != pgno:
            raise BdbError(f"page {pgno} says it is page {stored}")
        kind = self.data[offset + 25]
        if kind not in expected_types:
            raise BdbError(f"page {pgno} has type {kind}, expected {expected_types}")
        return offset

    def overflow(self, pgno: int, total: int) -> bytes:
        """Concatenate an overflow chain of ``total`` bytes starting at page ``pgno``."""
        if total <= 0 or total > len(self.data):
            raise BdbError(f"off-page item claims {total} bytes")
        out = bytearray()
        visited: set[int] = set()
        while len(out) < total:
            if pgno == 0:
                raise BdbError(f"overflow chain ends after {len(out)} of {total} bytes")
            if pgno in visited:
                raise BdbError(f"overflow chain loops back to page {pgno}")
            visited.add(pgno)
            offset = self.page_offset(pgno, (P_OVERFLOW,))
            length = self.u16.unpack_from(self.data, offset + 22)[0]  # bytes used on this page
            if PAGE_HEADER_SIZE + length > self.page_size or length > total - len(out):
                raise BdbError(f"overflow page {pgno} claims {length} bytes")
            start = offset + PAGE_HEADER_SIZE
            out += self.data[start : start + length]
            pgno = self.u32.unpack_from(self.data, offset + 16)[0]
        return bytes(out)

    def item(self, page: int, offset: int, length: int) -> tuple[int, bytes]:
        """(item type, bytes) of one key or value item on a hash page."""
        base = page * self.page_size
        if length <= 0:
            raise BdbError(f"page {page}: item at offset {offset} has length {length}")
        kind = self.data[base + offset]
        if kind == H_KEYDATA:
            return kind, bytes(self.data[base + offset + 1 : base + offset + length])
        if kind == H_OFFPAGE:
            if length < 12:
                raise BdbError(f"page {page}: off-page item at offset {offset} is {length} bytes")
            pgno = self.u32.unpack_from(self.data, base + offset + 4)[0]
            total = self.u32.unpack_from(self.data, base + offset + 8)[0]
            return kind, self.overflow(pgno, total)
        if kind in (H_DUPLICATE, H_OFFDUP):
            raise BdbError(f"page {page}: duplicate-key items are not used by rpm")
        raise BdbError(f"page {page}: unknown item type {kind} at offset {offset}")

    def hash_page(self, pgno: int, blobs: list[bytes], warnings: list[str], path: str) -> None:
        base = pgno * self.page_size
        entries = self.u16.unpack_from(self.data, base + 20)[0]
        index_end = PAGE_HEADER_SIZE + 2 * entries
        if index_end > self.page_size:
            warnings.append(f"{path}: page {pgno} claims {entries} items, more than fit; skipped")
            return
        if entries % 2:
            warnings.append(f"{path}: page {pgno} has an odd item count {entries}")
        offsets = [
            self.u16.unpack_from(self.data, base + PAGE_HEADER_SIZE + 2 * i)[0]
            for i in range(entries)
        ]
        for i in range(0, entries - 1, 2):
            key_offset, value_offset = offsets[i], offsets[i + 1]
            if not (index_end <= value_offset < key_offset < self.page_size):
                warnings.append(
                    f"{path}: page {pgno} item {i // 2} has offsets {key_offset}/{value_offset} "
                    "outside the page's item area; skipped"
                )
                continue
            key_end = self.page_size if i == 0 else offsets[i - 1]
            try:
                _, key = self.item(pgno, key_offset, key_end - key_offset)
                if key == b"\x00\x00\x00\x00":
                    self.records += 1
                    continue  # rpm's record of the highest package number, not a package
                _, value = self.item(pgno, value_offset, key_offset - value_offset)
            except BdbError as exc:
                warnings.append(f"{path}: {exc}; record skipped")
                continue
            self.records += 1
            blobs.append(value)


def read_bdb_blobs(data: bytes, path: str) -> tuple[list[bytes], list[str]]:
    """Header blobs from a BerkeleyDB hash ``Packages`` file, and what could not be read."""
    order = byte_order(data)
    if order is None:
        return [], [f"{path}: not a BerkeleyDB hash database (magic 0x00061561 missing)"]
    if len(data) < 512:
        return [], [f"{path}: truncated to {len(data)} bytes, shorter than the meta page"]
    u32 = struct.Struct(f"{order}I")
    version = u32.unpack_from(data, 16)[0]
    page_size = u32.unpack_from(data, 20)[0]
    last_pgno = u32.unpack_from(data, 32)[0]
    record_count = u32.unpack_from(data, 88)[0]  # "nelem": keys in the table
    warnings: list[str] = WarningLog(path)
    if data[24] != 0:
        return [], [f"{path}: encrypted BerkeleyDB (algorithm {data[24]}) cannot be read"]
    if data[25] != P_HASHMETA:
        return [], [f"{path}: first page has type {data[25]}, not a hash meta page"]
    if page_size not in _VALID_PAGE_SIZES:
        return [], [f"{path}: page size {page_size} is not a BerkeleyDB page size"]
    if not 8 <= version <= 10:
        warnings.append(f"{path}: hash version {version} is unknown; reading anyway")
    pages_in_file = len(data) // page_size
    if len(data) % page_size:
        warnings.append(f"{path}: file ends inside a page ({len(data)} bytes, page {page_size})")
    if last_pgno + 1 > pages_in_file:
        warnings.append(
            f"{path}: truncated: meta page says {last_pgno + 1} pages, file holds {pages_in_file}"
        )
    page_count = min(last_pgno + 1, pages_in_file)
    reader = _Reader(data, order, page_size, page_count)
    blobs: list[bytes] = []
    for pgno in range(1, page_count):
        base = pgno * page_size
        kind = data[base + 25]
        if kind in (P_INVALID, P_OVERFLOW):
            continue  # free/unused pages, and overflow pages read through their hash item
        if kind not in _HASH_PAGES:
            warnings.append(f"{path}: page {pgno} has type {kind}, not used in a hash database")
            continue
        stored = u32.unpack_from(data, base + 8)[0]
        if stored != pgno:
            warnings.append(f"{path}: page {pgno} says it is page {stored}; skipped")
            continue
        reader.hash_page(pgno, blobs, warnings, path)
    if reader.records < record_count:
        warnings.append(
            f"{path}: meta page counts {record_count} records, only {reader.records} were readable"
        )
    return blobs, warnings
