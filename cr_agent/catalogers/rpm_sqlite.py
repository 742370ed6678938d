"""rpm's SQLite backend (``rpmdb.sqlite``, rpm >= 4.16): table ``Packages(hnum, blob)``.

The database arrives as bytes, so it is loaded with ``Connection.deserialize`` (no temp file).
rpm keeps the file in WAL mode; an in-memory database cannot use a WAL, so the two header
bytes that select it are reset to the rollback-journal values in a copy before loading.
"""

from __future__ import annotations

import sqlite3

SQLITE_MAGIC = b"SQLite format 3\x00"
_WAL_VERSION_OFFSET = 18  # file format write/read version bytes; 2 means WAL


def is_sqlite(data: bytes) -> bool:
    return data.startswith(SQLITE_MAGIC)


def read_sqlite_blobs(data: bytes, path: str) -> tuple[list[bytes], list[str]]:
    """Header blobs in package-number order, and warnings naming what went wrong."""
    if not is_sqlite(data):
        return [], [f"{path}: not an SQLite database (no 'SQLite format 3' header)"]
    if len(data) < 100:
        return [], [f"{path}: SQLite file truncated to {len(data)} bytes"]
    image: bytes | bytearray = data
    if 2 in data[_WAL_VERSION_OFFSET : _WAL_VERSION_OFFSET + 2]:
        image = bytearray(data)  # copy only when the header must change
        image[_WAL_VERSION_OFFSET : _WAL_VERSION_OFFSET + 2] = b"\x01\x01"
    conn = sqlite3.connect(":memory:")
    conn.text_factory = bytes  # a damaged column type must not become a decoding error
    try:
        conn.deserialize(image)
        conn.execute("PRAGMA query_only = ON")
        rows = conn.execute("SELECT hnum, blob FROM Packages ORDER BY hnum").fetchall()
    except (sqlite3.Error, ValueError, OverflowError) as exc:
        return [], [f"{path}: cannot read the Packages table: {exc}"]
    finally:
        conn.close()
    blobs: list[bytes] = []
    warnings: list[str] = []
    for hnum, blob in rows:
        if isinstance(blob, bytes):
            blobs.append(blob)
        else:
            warnings.append(f"{path}: package {hnum} has a {type(blob).__name__} blob, not bytes")
    return blobs, warnings
