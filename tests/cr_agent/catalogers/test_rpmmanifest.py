"""Azure Linux / CBL-Mariner container-manifest-2, as written by rpm's own query output."""

from __future__ import annotations

import shutil
from pathlib import Path

from cr_agent.catalogers.rpmmanifest import MANIFEST_PATH, RpmManifestCataloger
from tests.cr_agent.catalogers.rpm_fixtures import (
    MANIFEST_FORMAT,
    SQLITE_DB,
    expected_rows,
    rpm_query,
)


def test_manifest_written_by_rpm_lists_the_fixture_packages(tmp_path: Path) -> None:
    shutil.copyfile(SQLITE_DB, tmp_path / "rpmdb.sqlite")
    manifest = rpm_query(tmp_path, MANIFEST_FORMAT).encode()
    cataloger = RpmManifestCataloger()
    assert cataloger.wants(MANIFEST_PATH)
    result = cataloger.catalog({MANIFEST_PATH: manifest})
    assert result.warnings == []
    got = sorted(
        (
            p.name,
            "(none)" if p.epoch is None else str(p.epoch),
            p.version,
            p.release,
            p.arch,
            dict(p.extra)["sourcerpm"],
        )
        for p in result.packages
    )
    assert got == [row[:6] for row in expected_rows()]
    hello = next(p for p in result.packages if p.name == "hello-tool")
    assert (hello.source_name, hello.source_version, hello.full_version) == (
        "hello-tool",
        "1.2.3-4.fx1",
        "2:1.2.3-4.fx1",
    )


MARINER_LINES = (
    "bash\t5.1.8-4.cm2\t1700000000\t1690000000\tMicrosoft Corporation\t(none)\t7014592"
    "\tx86_64\t0\tbash-5.1.8-4.cm2.src.rpm\n"
    "openssl-libs\t1.1.1k-28.cm2\t1700000000\t1690000000\tMicrosoft Corporation\t(none)\t4233"
    "\tx86_64\t0\topenssl-1.1.1k-28.cm2.src.rpm\n"
)


def test_garbled_lines_are_reported_and_skipped() -> None:
    text = (
        MARINER_LINES
        + "only\ttwo\n"
        + "\x00\x01junk\n"
        + "x\tnodash\t1\t2\tv\t(none)\t1\tx86_64\t0\ts\n"
    )
    result = RpmManifestCataloger().catalog({MANIFEST_PATH: text.encode()})
    assert [(p.name, p.source_name) for p in result.packages] == [
        ("bash", "bash"),
        ("openssl-libs", "openssl"),
    ]
    assert result.warnings == [
        f"{MANIFEST_PATH} line 3: 2 tab-separated fields, expected 10",
        f"{MANIFEST_PATH} line 4: 1 tab-separated fields, expected 10",
        f"{MANIFEST_PATH} line 5: cannot split 'nodash' into V-R",
    ]


def test_manifest_stands_aside_when_an_rpmdb_exists() -> None:
    cataloger = RpmManifestCataloger()
    assert cataloger.wants("var/lib/rpm/rpmdb.sqlite")
    files = {MANIFEST_PATH: MARINER_LINES.encode(), "var/lib/rpm/rpmdb.sqlite": b"SQLite..."}
    assert cataloger.catalog(files).packages == []
    assert len(cataloger.catalog({MANIFEST_PATH: MARINER_LINES.encode()}).packages) == 2
