"""A reader bug costs one file with a warning that names it, never the whole scan."""

from __future__ import annotations

import pytest

from cr_agent.catalogers import apk, dpkg, rpm
from cr_agent.catalogers.apk import ApkCataloger
from cr_agent.catalogers.dpkg import DpkgCataloger
from cr_agent.catalogers.rpm import RpmCataloger
from tests.cr_agent.catalogers.rpm_fixtures import BDB_DB, SQLITE_DB


def boom(*_args: object) -> None:
    raise RuntimeError("boom")


def test_rpm_reader_bug_falls_back_to_the_other_database(monkeypatch: pytest.MonkeyPatch) -> None:
    real = rpm.read_rpmdb

    def only_bdb_works(data: bytes, path: str, wal: bytes | None = None):
        if path.endswith("rpmdb.sqlite"):
            boom()
        return real(data, path, wal)

    monkeypatch.setattr(rpm, "read_rpmdb", only_bdb_works)
    result = RpmCataloger().catalog(
        {
            "var/lib/rpm/rpmdb.sqlite": SQLITE_DB.read_bytes(),
            "var/lib/rpm/Packages": BDB_DB.read_bytes(),
        }
    )
    assert len(result.packages) == 5
    assert result.warnings == [
        "var/lib/rpm/rpmdb.sqlite: rpm reader failed unexpectedly: RuntimeError: boom"
    ]


def test_dpkg_and_apk_reader_bugs_become_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dpkg, "read_status", boom)
    monkeypatch.setattr(apk, "parse_installed", boom)
    result = DpkgCataloger().catalog({"var/lib/dpkg/status": b"Package: x\nVersion: 1\n"})
    assert result.packages == []
    assert result.warnings == [
        "var/lib/dpkg/status: dpkg reader failed unexpectedly: RuntimeError: boom"
    ]
    result = ApkCataloger().catalog({"lib/apk/db/installed": b"P:x\nV:1\n"})
    assert result.warnings == [
        "lib/apk/db/installed: apk reader failed unexpectedly: RuntimeError: boom"
    ]
