"""rpm's NDB backend: ``Packages.db`` (SUSE since SLE 15 SP3 / openSUSE, rpm >= 4.15).

Layout (little-endian): a 32-byte file header (``RpmP``, version 0, generation, number of
4 KiB slot pages, next package index), then the slot pages: 16-byte slots (``Slot``, package
index, block offset, block count; index 0 = free). A slot points at a run of 16-byte blocks
holding a blob: 16-byte head (``BlbS``, package index, generation, length), the header blob,
padding, and a 12-byte tail (Adler-32 of everything before the tail, length, ``BlbE``).

Every blob's head, tail and checksum are verified; a bad one is skipped with a warning.
"""

from __future__ import annotations

import struct
import zlib

from cr_agent.catalogers.warning_limit import WarningLog

FILE_MAGIC = b"RpmP"
SLOT_MAGIC = b"Slot"
BLOB_HEAD_MAGIC = b"BlbS"
BLOB_TAIL_MAGIC = b"BlbE"
FILE_HEADER_SIZE = 32
SLOT_PAGE_SIZE = 4096
SLOT_SIZE = 16
BLOCK_SIZE = 16
BLOB_HEAD_SIZE = 16
BLOB_TAIL_SIZE = 12
# A slot page holds 256 slots; thousands of pages would mean hundreds of thousands of
# packages, so a bigger count is corruption (go-rpmdb uses the same sanity cap).
MAX_SLOT_PAGES = 2048

_HEADER = struct.Struct("<4sIIII")  # magic, version, generation, slot pages, next index
_SLOT = struct.Struct("<4sIII")  # magic, package index, block offset, block count
_BLOB_HEAD = struct.Struct("<4sIII")  # magic, package index, generation, blob length
_BLOB_TAIL = struct.Struct("<II4s")  # adler32, blob length, magic


def is_ndb(data: bytes) -> bool:
    return data[:4] == FILE_MAGIC


def _blob(data: bytes, index: int, block_offset: int, block_count: int) -> bytes:
    """The verified header blob of package ``index``; ValueError saying what is wrong."""
    start = block_offset * BLOCK_SIZE
    end = start + block_count * BLOCK_SIZE
    if block_count * BLOCK_SIZE < BLOB_HEAD_SIZE + BLOB_TAIL_SIZE or end > len(data):
        raise ValueError(f"blocks {block_offset}+{block_count} run past the end of the file")
    magic, blob_index, _generation, length = _BLOB_HEAD.unpack_from(data, start)
    if magic != BLOB_HEAD_MAGIC:
        raise ValueError(f"no blob head at byte {start}")
    if blob_index != index:
        raise ValueError(f"blob at byte {start} belongs to package {blob_index}")
    needed = (BLOB_HEAD_SIZE + length + BLOB_TAIL_SIZE + BLOCK_SIZE - 1) // BLOCK_SIZE
    if needed != block_count:
        raise ValueError(f"blob length {length} does not fill its {block_count} blocks")
    tail = end - BLOB_TAIL_SIZE
    checksum, tail_length, tail_magic = _BLOB_TAIL.unpack_from(data, tail)
    if tail_magic != BLOB_TAIL_MAGIC or tail_length != length:
        raise ValueError(f"blob tail at byte {tail} is damaged")
    if zlib.adler32(memoryview(data)[start:tail]) != checksum:
        raise ValueError(f"checksum mismatch for the blob at byte {start}")
    return data[start + BLOB_HEAD_SIZE : start + BLOB_HEAD_SIZE + length]


def read_ndb_blobs(data: bytes, path: str) -> tuple[list[bytes], list[str]]:
    """Header blobs in slot order, and warnings for every slot or blob that was unreadable."""
    if len(data) < FILE_HEADER_SIZE or not is_ndb(data):
        return [], [f"{path}: not an rpm NDB database (no 'RpmP' header)"]
    _magic, version, _generation, slot_pages, _next = _HEADER.unpack_from(data, 0)
    if version != 0:
        return [], [f"{path}: NDB version {version} is not supported (only 0)"]
    if not 0 < slot_pages <= MAX_SLOT_PAGES:
        return [], [f"{path}: {slot_pages} slot pages is not plausible (1..{MAX_SLOT_PAGES})"]
    warnings: list[str] = WarningLog(path)
    slots_end = slot_pages * SLOT_PAGE_SIZE
    if slots_end > len(data):
        warnings.append(f"{path}: truncated inside the slot pages ({len(data)} bytes)")
        slots_end = len(data) - len(data) % SLOT_SIZE
    blobs: list[bytes] = []
    bad_slots = 0
    for offset in range(FILE_HEADER_SIZE, slots_end, SLOT_SIZE):
        magic, index, block_offset, block_count = _SLOT.unpack_from(data, offset)
        if magic != SLOT_MAGIC:
            bad_slots += 1
            continue
        if index == 0:
            continue  # free slot
        if block_offset * BLOCK_SIZE < slots_end:
            warnings.append(f"{path}: slot of package {index} points into the slot pages")
            continue
        try:
            blobs.append(_blob(data, index, block_offset, block_count))
        except ValueError as exc:
            warnings.append(f"{path}: package {index}: {exc}; skipped")
    if bad_slots:
        warnings.append(f"{path}: {bad_slots} slots had no 'Slot' magic and were skipped")
    return blobs, warnings
