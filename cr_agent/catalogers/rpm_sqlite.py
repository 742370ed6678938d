"""rpm's SQLite backend (``rpmdb.sqlite``, rpm >= 4.16): table ``Packages(hnum, blob)``.

The database arrives as bytes. Normally it is loaded with ``Connection.deserialize`` (no temp
file): rpm keeps the file in WAL mode, which an in-memory database cannot use, so the two
header bytes that select WAL are reset to the rollback-journal values in a copy first; rpm
checkpoints on close, so the main file is complete. Only when the image also holds a non-empty
``rpmdb.sqlite-wal`` (a transaction not yet checkpointed) are both written to a private temp
directory and opened as files, so SQLite itself replays the committed part of the WAL.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

# sqlite3 (with datetime), tempfile and pathlib cost ~5 ms to import; they are imported in the
# functions below, so a scan that finds no SQLite rpmdb (every dpkg or apk image) never pays.

SQLITE_MAGIC = b"SQLite format 3\x00"
_WAL_VERSION_OFFSET = 18  # file format write/read version bytes; 2 means WAL
_QUERY = "SELECT hnum, blob FROM Packages ORDER BY hnum"
# A crafted database could make one query run for very long; a real rpmdb reads in well under
# a second, so SQLite is told to give up after this long (checked every PROGRESS_STEPS steps
# of its virtual machine).
QUERY_DEADLINE_SECONDS = 60.0
PROGRESS_STEPS = 10_000


def _limit_time(conn: sqlite3.Connection) -> None:
    deadline = time.monotonic() + QUERY_DEADLINE_SECONDS
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), PROGRESS_STEPS)


def is_sqlite(data: bytes) -> bool:
    return data.startswith(SQLITE_MAGIC)


def _rows_in_memory(data: bytes) -> list[Any]:
    image: bytes | bytearray = data
    if 2 in data[_WAL_VERSION_OFFSET : _WAL_VERSION_OFFSET + 2]:
        image = bytearray(data)  # copy only when the header must change
        image[_WAL_VERSION_OFFSET : _WAL_VERSION_OFFSET + 2] = b"\x01\x01"
    import sqlite3

    conn = sqlite3.connect(":memory:")
    conn.text_factory = bytes  # a damaged column type must not become a decoding error
    try:
        conn.deserialize(image)
        conn.execute("PRAGMA query_only = ON")
        _limit_time(conn)
        return conn.execute(_QUERY).fetchall()
    finally:
        conn.close()


def _rows_with_wal(data: bytes, wal: bytes) -> list[Any]:
    import sqlite3
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="cr-agent-rpmdb-") as tmp:
        db = Path(tmp) / "rpmdb.sqlite"
        db.write_bytes(data)
        Path(f"{db}-wal").write_bytes(wal)
        conn = sqlite3.connect(db)
        conn.text_factory = bytes
        try:
            conn.execute("PRAGMA query_only = ON")
            _limit_time(conn)
            return conn.execute(_QUERY).fetchall()
        finally:
            conn.close()


def read_sqlite_blobs(
    data: bytes, path: str, wal: bytes | None = None
) -> tuple[list[bytes], list[str]]:
    """Header blobs in package-number order, and warnings naming what went wrong."""
    if not is_sqlite(data):
        return [], [f"{path}: not an SQLite database (no 'SQLite format 3' header)"]
    if len(data) < 100:
        return [], [f"{path}: SQLite file truncated to {len(data)} bytes"]
    import sqlite3

    try:
        rows = _rows_with_wal(data, wal) if wal else _rows_in_memory(data)
    except (sqlite3.Error, ValueError, OverflowError) as exc:
        if str(exc) == "interrupted":
            return [], [f"{path}: reading took over {QUERY_DEADLINE_SECONDS:.0f} s; given up"]
        return [], [f"{path}: cannot read the Packages table: {exc}"]
    blobs: list[bytes] = []
    warnings: list[str] = []
    for hnum, blob in rows:
        if isinstance(blob, bytes):
            blobs.append(blob)
        else:
            warnings.append(f"{path}: package {hnum} has a {type(blob).__name__} blob, not bytes")
    return blobs, warnings
