"""Shared helpers for the rpm tests: the committed fixtures, rpm itself, and a header encoder.

The fixture databases are made by ``tests/fixtures/rpmdb/make_fixtures.py`` with Debian's rpm
and db5.3-util; ``expected.tsv`` beside them lists what that script installed.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "rpmdb"
SQLITE_DB = FIXTURES / "sqlite" / "rpmdb.sqlite"
BDB_DB = FIXTURES / "bdb" / "Packages"
BDB_8K_DB = FIXTURES / "bdb-8k" / "Packages"
SUSE_NDB = REPO.parent / "shared" / "reference" / "rpmdb" / "sle15-bci" / "Packages.db"
SUSE_EXPECTED = SUSE_NDB.parent / "expected.tsv"

# The columns of expected.tsv, as rpm's query format writes them.
QUERY_FORMAT = (
    "%{NAME}\\t%|EPOCH?{%{EPOCH}}:{(none)}|\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}"
    "\\t%{SOURCERPM}\\t%{LICENSE}\\n"
)
# What Azure Linux writes into var/lib/rpmmanifest/container-manifest-2.
MANIFEST_FORMAT = (
    "%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{INSTALLTIME}\\t%{BUILDTIME}\\t%{VENDOR}\\t%{EPOCH}"
    "\\t%{SIZE}\\t%{ARCH}\\t%{EPOCHNUM}\\t%{SOURCERPM}\\n"
)


def expected_rows() -> list[tuple[str, ...]]:
    lines = (FIXTURES / "expected.tsv").read_text().splitlines()
    return sorted(tuple(line.split("\t")) for line in lines if line and not line.startswith("#"))


def rows_of(packages) -> list[tuple[str, ...]]:
    """Packages as expected.tsv rows (name, epoch, version, release, arch, sourcerpm, licence)."""
    return sorted(
        (
            p.name,
            "(none)" if p.epoch is None else str(p.epoch),
            p.version,
            p.release or "",
            p.arch or "",
            dict(p.extra).get("sourcerpm", ""),
            " ".join(p.licenses),
        )
        for p in packages
    )


def require_rpm() -> str:
    rpm = shutil.which("rpm")
    if rpm is None:
        pytest.skip("Debian's rpm is not installed (apt-get install -y rpm)")
    return rpm


def rpm_query(dbdir: Path, query_format: str, *defines: str) -> str:
    """Run the real rpm against a database directory and return its stdout."""
    done = subprocess.run(
        [require_rpm(), "--dbpath", str(dbdir), *defines, "-qa", "--qf", query_format],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def encode_header(entries: list[tuple[int, int, object]]) -> bytes:
    """A header blob from (tag, type, value) triples, laid out as rpm does (for edge cases)."""
    index = []
    data = bytearray()
    alignment = {3: 2, 4: 4, 5: 8}
    for tag, kind, value in entries:
        while len(data) % alignment.get(kind, 1):
            data.append(0)
        offset = len(data)
        if kind == 6:
            assert isinstance(value, str)
            data += value.encode() + b"\0"
            count = 1
        elif kind in (8, 9):
            assert isinstance(value, list)
            for item in value:
                data += item.encode() + b"\0"
            count = len(value)
        elif kind == 4:
            assert isinstance(value, list)
            data += struct.pack(f">{len(value)}I", *value)
            count = len(value)
        elif kind == 7:
            assert isinstance(value, bytes)
            data += value
            count = len(value)
        else:
            raise ValueError(kind)
        index.append(struct.pack(">iIiI", tag, kind, offset, count))
    return struct.pack(">II", len(entries), len(data)) + b"".join(index) + bytes(data)
