"""What the file-based readers share (FileCataloger): de-duplication across databases, and a
purl rule for every package type a reader produces."""

from __future__ import annotations

from cr_agent.catalogers import PURL_RULES, default_catalogers
from cr_agent.catalogers.apk import ApkCataloger
from cr_agent.catalogers.dpkg import DpkgCataloger
from cr_agent.catalogers.rpm import RpmCataloger
from tests.cr_agent.catalogers.rpm_fixtures import SQLITE_DB, expected_rows, rows_of
from tests.cr_agent.catalogers.test_apk import apk_entry
from tests.cr_agent.catalogers.test_dpkg import paragraph


def test_apk_lists_a_database_present_at_both_paths_once() -> None:
    db = apk_entry("musl", "1.2.4-r2", "musl", "MIT") + apk_entry("zlib", "1.3-r0", "zlib", "Zlib")
    files = {"lib/apk/db/installed": db.encode(), "usr/lib/apk/db/installed": db.encode()}
    result = ApkCataloger().catalog(files)
    assert [(p.name, p.database) for p in result.packages] == [
        ("musl", "lib/apk/db/installed"),
        ("zlib", "lib/apk/db/installed"),
    ]
    assert result.warnings == []


def test_dpkg_keeps_the_first_of_two_files_listing_a_package_and_says_so() -> None:
    files = {
        "var/lib/dpkg/status": paragraph("bash", "5.2-1").encode(),
        "var/lib/dpkg/status.d/bash": paragraph("bash", "5.2-2", status=None).encode(),
        "var/lib/dpkg/status.d/zlib": paragraph("zlib1g", "1:1.2.13", status=None).encode(),
    }
    result = DpkgCataloger().catalog(files)
    assert [(p.name, p.full_version) for p in result.packages] == [
        ("bash", "5.2-1"),
        ("zlib1g", "1:1.2.13"),
    ]
    assert result.warnings == [
        "var/lib/dpkg/status.d/bash: bash (amd64) is also listed in an earlier file; kept the first"
    ]


def test_rpm_lists_a_database_reached_through_two_directories_once() -> None:
    data = SQLITE_DB.read_bytes()
    files = {"var/lib/rpm/rpmdb.sqlite": data, "usr/lib/sysimage/rpm/rpmdb.sqlite": data}
    result = RpmCataloger().catalog(files)
    assert sorted(rows_of(result.packages)) == sorted(expected_rows())
    assert result.warnings == []


def test_every_reader_package_type_has_a_purl_rule() -> None:
    assert all(rule.type == name for name, rule in PURL_RULES.items())
    files = {
        "lib/apk/db/installed": apk_entry("musl", "1.2.4-r2", "musl", "MIT").encode(),
        "var/lib/dpkg/status": paragraph("bash", "5.2-1").encode(),
        "var/lib/rpm/rpmdb.sqlite": SQLITE_DB.read_bytes(),
    }
    types = {p.type for c in default_catalogers() for p in c.catalog(files).packages}
    assert types == {"apk", "deb", "rpm"}
    assert types <= set(PURL_RULES)
