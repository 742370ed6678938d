"""rpm databases (SQLite, BerkeleyDB, NDB) against what real tools wrote and read back."""

from __future__ import annotations

import random
import shutil
import sqlite3
import struct
import time
from pathlib import Path

import pytest

from cr_agent.catalogers import default_catalogers
from cr_agent.catalogers.rpm import RpmCataloger, read_rpmdb
from cr_agent.catalogers.rpm_bdb import read_bdb_blobs
from cr_agent.catalogers.rpm_ndb import read_ndb_blobs
from tests.cr_agent.catalogers.rpm_fixtures import (
    BDB_8K_DB,
    BDB_DB,
    QUERY_FORMAT,
    SQLITE_DB,
    SUSE_EXPECTED,
    SUSE_NDB,
    encode_header,
    expected_rows,
    rows_of,
    rpm_query,
)


def catalog(files: dict[str, bytes]):
    cataloger = RpmCataloger()
    assert all(cataloger.wants(path) for path in files)
    return cataloger.catalog(files)


# --- the fixtures made by Debian's rpm / db5.3_load -------------------------------------


def test_sqlite_rpmdb_lists_exactly_what_the_fixture_script_installed() -> None:
    result = catalog({"var/lib/rpm/rpmdb.sqlite": SQLITE_DB.read_bytes()})
    assert result.warnings == []
    assert rows_of(result.packages) == expected_rows()
    assert len(expected_rows()) == 5


@pytest.mark.parametrize("fixture", [BDB_DB, BDB_8K_DB], ids=["4k-overflow", "8k-inline"])
def test_berkeleydb_packages_lists_exactly_what_the_fixture_script_installed(
    fixture: Path,
) -> None:
    result = catalog({"var/lib/rpm/Packages": fixture.read_bytes()})
    assert result.warnings == []
    assert rows_of(result.packages) == expected_rows()


def test_8k_fixture_really_has_inline_and_offpage_values() -> None:
    data = BDB_8K_DB.read_bytes()
    size = struct.unpack_from("<I", data, 20)[0]
    kinds = set()
    for page in range(1, len(data) // size):
        base = page * size
        if data[base + 25] == 13:
            count = struct.unpack_from("<H", data, base + 20)[0]
            for i in range(1, count, 2):  # value items
                kinds.add(data[base + struct.unpack_from("<H", data, base + 26 + 2 * i)[0]])
    assert kinds == {1, 3}  # H_KEYDATA and H_OFFPAGE


@pytest.mark.parametrize("fixture", [SQLITE_DB, BDB_DB, BDB_8K_DB], ids=["sqlite", "bdb", "bdb-8k"])
def test_our_reader_agrees_with_rpm_reading_the_same_file(fixture: Path, tmp_path: Path) -> None:
    shutil.copyfile(fixture, tmp_path / fixture.name)  # rpm may touch lock files beside it
    defines = ("--define", "_db_backend bdb_ro") if fixture != SQLITE_DB else ()
    from_rpm = sorted(
        tuple(line.split("\t")) for line in rpm_query(tmp_path, QUERY_FORMAT, *defines).splitlines()
    )
    ours = read_rpmdb(fixture.read_bytes(), "var/lib/rpm/" + fixture.name)
    assert rows_of(ours.packages) == from_rpm


def test_package_fields_epoch_source_and_licence() -> None:
    result = catalog({"usr/lib/sysimage/rpm/rpmdb.sqlite": SQLITE_DB.read_bytes()})
    by_name = {p.name: p for p in result.packages}
    hello = by_name["hello-tool"]
    assert (hello.epoch, hello.version, hello.release, hello.arch) == (
        2,
        "1.2.3",
        "4.fx1",
        "x86_64",
    )
    assert hello.full_version == "2:1.2.3-4.fx1"
    assert (hello.source_name, hello.source_version) == ("hello-tool", "1.2.3-4.fx1")
    assert hello.licenses == ("MIT",)
    assert hello.database == "usr/lib/sysimage/rpm/rpmdb.sqlite"
    lib = by_name["libwidget"]
    assert (lib.source_name, lib.source_version, lib.epoch) == ("widget", "0.9.1-1.fx1", 0)
    assert lib.full_version == "0.9.1-1.fx1"  # epoch 0 is not written, as rpm -q does
    assert by_name["noarch-data"].epoch is None
    assert by_name["noarch-data"].arch == "noarch"
    assert ("vendor", "crbroker tests") in hello.extra


def test_all_three_locations_are_read() -> None:
    cataloger = RpmCataloger()
    for directory in ("var/lib/rpm", "usr/lib/sysimage/rpm", "usr/share/rpm"):
        for name in ("rpmdb.sqlite", "Packages.db", "Packages"):
            assert cataloger.wants(f"{directory}/{name}")
    assert not cataloger.wants("var/lib/rpm/Name")
    assert not cataloger.wants("var/lib/rpm/rpmdb.sqlite-shm")
    result = cataloger.catalog({"usr/share/rpm/Packages": BDB_DB.read_bytes()})
    assert rows_of(result.packages) == expected_rows()


def test_format_is_decided_by_content_not_by_name() -> None:
    # An SQLite database under the BerkeleyDB name is still read as SQLite.
    result = catalog({"var/lib/rpm/Packages": SQLITE_DB.read_bytes()})
    assert rows_of(result.packages) == expected_rows()


def test_leftover_older_database_in_the_same_directory_is_ignored_with_a_note() -> None:
    result = catalog(
        {
            "var/lib/rpm/rpmdb.sqlite": SQLITE_DB.read_bytes(),
            "var/lib/rpm/Packages": BDB_DB.read_bytes(),
        }
    )
    assert rows_of(result.packages) == expected_rows()
    assert result.warnings == [
        "var/lib/rpm/Packages: ignored, var/lib/rpm/rpmdb.sqlite is the newer database"
    ]


def test_same_database_in_two_directories_lists_each_package_once() -> None:
    result = catalog(
        {
            "var/lib/rpm/rpmdb.sqlite": SQLITE_DB.read_bytes(),
            "usr/lib/sysimage/rpm/rpmdb.sqlite": SQLITE_DB.read_bytes(),
        }
    )
    assert rows_of(result.packages) == expected_rows()


def test_default_catalogers_include_rpm() -> None:
    names = [c.name for c in default_catalogers()]
    assert names[0] == "os-release"
    assert {"dpkg", "apk", "rpm", "rpmmanifest"} <= set(names)


# --- the real SUSE NDB database -----------------------------------------------------------


def test_suse_ndb_matches_expected_list() -> None:
    if not SUSE_NDB.exists():
        pytest.skip(f"needs ../shared beside the clone: real NDB database {SUSE_NDB} is absent")
    data = SUSE_NDB.read_bytes()
    result = catalog({"usr/lib/sysimage/rpm/Packages.db": data})
    assert result.warnings == []
    ours = sorted(
        (p.name, p.version, p.release or "", p.arch or "", dict(p.extra)["sourcerpm"])
        for p in result.packages
    )
    expected = sorted(
        tuple(line.split("\t")) for line in SUSE_EXPECTED.read_text().splitlines() if line
    )
    # Every blob in the file is a package: one per blob head.
    assert len(ours) == data.count(b"BlbS") == 35
    assert set(ours) <= set(expected)
    # expected.tsv also lists libgcc 11.2.1-1.fc35 (a Fedora build); that package is not in
    # this SUSE database at all: no byte sequence of its source rpm occurs in the file.
    missing = set(expected) - set(ours)
    assert all(row[4].encode() not in data for row in missing)
    assert len(missing) == len(expected) - 35


def test_suse_ndb_source_packages_from_sourcerpm() -> None:
    # what advisory matching keys on: SUSE's binary libreadline7 is built from bash
    if not SUSE_NDB.exists():
        pytest.skip(f"real NDB database not present at {SUSE_NDB}")
    result = catalog({"usr/lib/sysimage/rpm/Packages.db": SUSE_NDB.read_bytes()})
    sources = {p.name: (p.source_name, p.source_version) for p in result.packages}
    assert sources["libreadline7"] == ("bash", "4.4-19.6.1")
    assert sources["libstdc++6"] == ("gcc11", "11.2.1+git610-1.3.9")
    assert sources["libz1"] == ("zlib", "1.2.11-3.21.1")
    for package in result.packages:
        rpm_name = dict(package.extra)["sourcerpm"]
        assert rpm_name == f"{package.source_name}-{package.source_version}.src.rpm"


def test_suse_ndb_blob_checksum_mismatch_skips_only_that_package() -> None:
    if not SUSE_NDB.exists():
        pytest.skip(f"needs ../shared beside the clone: real NDB database {SUSE_NDB} is absent")
    data = bytearray(SUSE_NDB.read_bytes())
    # Slot 1 of the first slot page: package index and block offset of its blob.
    _, index, block_offset, _ = struct.unpack_from("<4sIII", data, 32 + 16)
    data[block_offset * 16 + 100] ^= 0xFF
    blobs, warnings = read_ndb_blobs(bytes(data), "Packages.db")
    assert len(blobs) == 34
    assert warnings == [
        f"Packages.db: package {index}: checksum mismatch for the blob at byte "
        f"{block_offset * 16}; skipped"
    ]


def test_suse_ndb_truncated_and_bad_header() -> None:
    if not SUSE_NDB.exists():
        pytest.skip(f"needs ../shared beside the clone: real NDB database {SUSE_NDB} is absent")
    data = SUSE_NDB.read_bytes()
    blobs, warnings = read_ndb_blobs(data[: len(data) // 2], "Packages.db")
    assert 0 < len(blobs) < 35
    assert warnings and all("run past the end of the file" in w for w in warnings)
    huge = data[:12] + struct.pack("<I", 10**6) + data[16:]
    assert read_ndb_blobs(huge, "Packages.db") == (
        [],
        ["Packages.db: 1000000 slot pages is not plausible (1..2048)"],
    )
    blobs, warnings = read_ndb_blobs(data[:3000], "Packages.db")
    assert blobs == [] and "truncated inside the slot pages" in warnings[0]


# --- corrupt BerkeleyDB pages -------------------------------------------------------------


def bdb_pages() -> tuple[bytearray, int]:
    data = bytearray(BDB_DB.read_bytes())
    return data, struct.unpack_from("<I", data, 20)[0]


def test_corrupt_overflow_page_loses_one_package_with_a_warning() -> None:
    data, size = bdb_pages()
    overflow = next(p for p in range(1, len(data) // size) if data[p * size + 25] == 7)
    data[overflow * size + 25] = 0x55  # page type byte
    blobs, warnings = read_bdb_blobs(bytes(data), "Packages")
    assert len(blobs) == 4
    assert any(f"page {overflow} has type 85, expected (7,)" in w for w in warnings), warnings
    assert any("page " in w and "has type 85, not used in a hash database" in w for w in warnings)
    assert any("meta page counts 6 records, only 5 were readable" in w for w in warnings)


def test_overflow_chain_loop_is_detected_not_followed_forever() -> None:
    data, size = bdb_pages()
    chain = [p for p in range(1, len(data) // size) if data[p * size + 25] == 7]
    # The multi-page chain of the big noarch package: point a middle page back at itself.
    middle = next(p for p in chain if struct.unpack_from("<I", data, p * size + 16)[0] != 0)
    struct.pack_into("<I", data, middle * size + 16, middle)
    start = time.monotonic()
    blobs, warnings = read_bdb_blobs(bytes(data), "Packages")
    assert time.monotonic() - start < 5
    assert len(blobs) == 4
    assert any(f"overflow chain loops back to page {middle}" in w for w in warnings), warnings


def test_hash_page_with_wrong_page_number_is_skipped() -> None:
    data, size = bdb_pages()
    hash_page = next(p for p in range(1, len(data) // size) if data[p * size + 25] == 13)
    struct.pack_into("<I", data, hash_page * size + 8, 999)
    result = read_rpmdb(bytes(data), "var/lib/rpm/Packages")
    assert 0 < len(result.packages) < 5
    assert f"var/lib/rpm/Packages: page {hash_page} says it is page 999; skipped" in result.warnings


def test_truncated_berkeleydb_reports_truncation() -> None:
    data, size = bdb_pages()
    result = read_rpmdb(bytes(data[: size * 5 + 100]), "var/lib/rpm/Packages")
    assert any("truncated: meta page says 19 pages, file holds 5" in w for w in result.warnings)
    assert any("file ends inside a page" in w for w in result.warnings)
    assert len(result.packages) < 5


def test_bad_meta_page_values() -> None:
    data, _ = bdb_pages()
    bad_size = bytes(data[:20]) + struct.pack("<I", 1000) + bytes(data[24:])
    assert read_bdb_blobs(bad_size, "P")[1] == ["P: page size 1000 is not a BerkeleyDB page size"]
    encrypted = bytes(data[:24]) + b"\x01" + bytes(data[25:])
    assert "encrypted" in read_bdb_blobs(encrypted, "P")[1][0]
    assert read_bdb_blobs(bytes(data[:100]), "P")[1] == [
        "P: truncated to 100 bytes, shorter than the meta page"
    ]


def test_big_endian_berkeleydb_is_read() -> None:
    """Swap every integer of the fixture to big-endian, as a PowerPC/s390x host writes it."""
    data, size = bdb_pages()
    swapped = bytearray(data)

    def swap32(offset: int) -> None:
        swapped[offset : offset + 4] = swapped[offset : offset + 4][::-1]

    def swap16(offset: int) -> None:
        swapped[offset : offset + 2] = swapped[offset : offset + 2][::-1]

    for offset in range(8, 224, 4):  # meta page integer fields; bytes 24..27 are single bytes
        if offset != 24:
            swap32(offset)
    for page in range(1, len(data) // size):
        base = page * size
        for offset in (8, 12, 16):
            swap32(base + offset)
        entries = struct.unpack_from("<H", data, base + 20)[0]
        swap16(base + 20)
        swap16(base + 22)
        if data[base + 25] == 13:
            for i in range(entries):
                item = struct.unpack_from("<H", data, base + 26 + 2 * i)[0]
                swap16(base + 26 + 2 * i)
                if data[base + item] == 3:
                    swap32(base + item + 4)
                    swap32(base + item + 8)
    result = read_rpmdb(bytes(swapped), "var/lib/rpm/Packages")
    assert result.warnings == []
    assert rows_of(result.packages) == expected_rows()


@pytest.mark.parametrize("fixture", [SQLITE_DB, BDB_DB, SUSE_NDB], ids=["sqlite", "bdb", "ndb"])
def test_random_byte_flips_never_raise_or_hang(fixture: Path) -> None:
    if not fixture.exists():
        pytest.skip(f"{fixture} not present")
    original = fixture.read_bytes()
    rng = random.Random(fixture.name)
    start = time.monotonic()
    for _ in range(40):
        data = bytearray(original)
        for _ in range(rng.randint(1, 64)):
            data[rng.randrange(len(data))] = rng.getrandbits(8)
        cut = len(data) if rng.random() < 0.7 else rng.randrange(len(data))
        result = read_rpmdb(bytes(data[:cut]), "var/lib/rpm/" + fixture.name)
        assert len(result.warnings) <= 11
        for package in result.packages:
            assert isinstance(package.name, str) and package.type == "rpm"
    assert time.monotonic() - start < 60


# --- SQLite damage ------------------------------------------------------------------------


def test_sqlite_with_a_garbage_header_blob_skips_that_package(tmp_path: Path) -> None:
    db = tmp_path / "rpmdb.sqlite"
    shutil.copyfile(SQLITE_DB, db)
    with sqlite3.connect(db) as conn:
        hnum = conn.execute("SELECT hnum FROM Packages ORDER BY hnum LIMIT 1").fetchone()[0]
        blob = b"\x00\x00\x00\x05\x00\x00\x00\x10"  # 5 entries, 16 data bytes, then nothing
        conn.execute("UPDATE Packages SET blob = ? WHERE hnum = ?", (blob, hnum))
    conn.close()
    result = read_rpmdb(db.read_bytes(), "var/lib/rpm/rpmdb.sqlite")
    assert len(result.packages) == 4
    assert result.warnings == [
        "var/lib/rpm/rpmdb.sqlite: header 1 of 5: header needs 104 bytes for 5 entries and 16 "
        "data bytes, blob has 8; skipped"
    ]


def test_uncheckpointed_wal_is_replayed(tmp_path: Path) -> None:
    """A transaction still in rpmdb.sqlite-wal counts: SQLite replays it, as rpm would."""
    live = tmp_path / "live"
    live.mkdir()
    shutil.copyfile(SQLITE_DB, live / "rpmdb.sqlite")
    conn = sqlite3.connect(live / "rpmdb.sqlite")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute(
        "DELETE FROM Packages WHERE hnum = (SELECT hnum FROM Name WHERE key = 'zeta-utils')"
    )
    conn.commit()
    # Snapshot the files while the connection is open, as a layer would capture them.
    main = (live / "rpmdb.sqlite").read_bytes()
    wal = (live / "rpmdb.sqlite-wal").read_bytes()
    conn.close()
    assert wal and main == SQLITE_DB.read_bytes()
    cataloger = RpmCataloger()
    assert cataloger.wants("var/lib/rpm/rpmdb.sqlite-wal")
    with_wal = cataloger.catalog(
        {"var/lib/rpm/rpmdb.sqlite": main, "var/lib/rpm/rpmdb.sqlite-wal": wal}
    )
    assert with_wal.warnings == []
    assert rows_of(with_wal.packages) == [r for r in expected_rows() if r[0] != "zeta-utils"]
    empty_wal = cataloger.catalog(
        {"var/lib/rpm/rpmdb.sqlite": main, "var/lib/rpm/rpmdb.sqlite-wal": b""}
    )
    assert rows_of(empty_wal.packages) == expected_rows()


def test_gpg_pubkey_entries_are_keys_not_packages(tmp_path: Path) -> None:
    key = encode_header(
        [
            (1000, 6, "gpg-pubkey"),
            (1001, 6, "fd431d51"),
            (1002, 6, "4ae0493b"),
            (1004, 9, ["Red Hat, Inc. (release key 2) <security@redhat.com> public key"]),
            (1014, 6, "pubkey"),
        ]
    )
    db = tmp_path / "rpmdb.sqlite"
    shutil.copyfile(SQLITE_DB, db)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO Packages (blob) VALUES (?)", (key,))
    conn.close()
    result = read_rpmdb(db.read_bytes(), "var/lib/rpm/rpmdb.sqlite")
    assert result.warnings == []
    assert rows_of(result.packages) == expected_rows()


def test_truncated_sqlite_gives_a_clear_warning() -> None:
    data = SQLITE_DB.read_bytes()
    result = read_rpmdb(data[:8192], "var/lib/rpm/rpmdb.sqlite")
    assert result.packages == []
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("var/lib/rpm/rpmdb.sqlite: cannot read the Packages table")


def test_sqlite_without_packages_table() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE other (x)")
    data = conn.serialize()
    conn.close()
    result = read_rpmdb(data, "var/lib/rpm/rpmdb.sqlite")
    assert result.packages == []
    assert result.warnings == [
        "var/lib/rpm/rpmdb.sqlite: cannot read the Packages table: no such table: Packages"
    ]


# --- size and junk ------------------------------------------------------------------------


def test_unknown_content_and_oversized_file() -> None:
    rng = random.Random(99)
    junk = rng.randbytes(4 * 1024 * 1024)
    result = catalog({"var/lib/rpm/Packages": junk})
    assert result.packages == []
    assert result.warnings == [
        "var/lib/rpm/Packages: not an rpm database this reader knows (SQLite, NDB or "
        "BerkeleyDB hash)"
    ]
    cataloger = RpmCataloger()
    cataloger.max_file_size = 1024
    result = cataloger.catalog({"var/lib/rpm/Packages": junk})
    assert result.warnings == [
        f"var/lib/rpm/Packages: {len(junk)} bytes exceeds the 1024-byte limit; skipped"
    ]


def test_huge_fake_berkeleydb_of_empty_pages_is_fast() -> None:
    """A 64 MiB file with a valid meta page and nothing else: read quickly, no packages."""
    data, size = bdb_pages()
    pages = 64 * 1024 * 1024 // size
    fake = bytearray(data[:size]) + bytearray(size * (pages - 1))
    struct.pack_into("<I", fake, 32, pages - 1)  # last page number
    start = time.monotonic()
    result = read_rpmdb(bytes(fake), "var/lib/rpm/Packages")
    assert time.monotonic() - start < 10
    assert result.packages == []
    assert result.warnings == [
        "var/lib/rpm/Packages: meta page counts 6 records, only 0 were readable"
    ]


def test_sqlite_query_deadline_gives_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from cr_agent.catalogers import rpm_sqlite

    monkeypatch.setattr(rpm_sqlite, "QUERY_DEADLINE_SECONDS", -1.0)
    monkeypatch.setattr(rpm_sqlite, "PROGRESS_STEPS", 1)
    result = read_rpmdb(SQLITE_DB.read_bytes(), "var/lib/rpm/rpmdb.sqlite")
    assert result.packages == []
    assert result.warnings == ["var/lib/rpm/rpmdb.sqlite: reading took over -1 s; given up"]


def test_pre_4_6_unsorted_hash_pages_are_read() -> None:
    """BDB < 4.6 (RHEL 5, SLES 11) marked hash pages type 2; the item layout is the same."""
    data, size = bdb_pages()
    for page in range(1, len(data) // size):
        if data[page * size + 25] == 13:
            data[page * size + 25] = 2
    result = read_rpmdb(bytes(data), "var/lib/rpm/Packages")
    assert result.warnings == []
    assert rows_of(result.packages) == expected_rows()
