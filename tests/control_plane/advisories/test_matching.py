"""Matching inventories against advisories: the cases issue 14 names, each asserted.

Inventories come from the real catalogers (a dpkg status file and an apk database built here,
the real SUSE rpm database) through the agent's native scan document, as the control plane
stores them; advisories from files written in the real formats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from control_plane.advisories.advisory_files import read_paths
from control_plane.advisories.inventory import InventoryError, inventory_from_scan
from control_plane.advisories.matching import AdvisoryIndex, IssueCounts, MatchResult
from control_plane.advisories.records import Stream
from cr_agent.catalogers.apk import ApkCataloger
from cr_agent.catalogers.base import Distro, Package
from cr_agent.catalogers.rpm import RpmCataloger
from tests.control_plane.advisories import feeds
from tests.control_plane.advisories.scans import (
    OPENSSL_LIBS_EL9,
    dpkg_packages,
    layer,
    scan_document,
)
from tests.cr_agent.catalogers.rpm_fixtures import SUSE_NDB


def by_package(result: MatchResult) -> dict[str, list[tuple[str, str | None, str]]]:
    found: dict[str, list[tuple[str, str | None, str]]] = {}
    for issue in result.issues:
        found.setdefault(issue.package_name, []).append(
            (issue.advisory_id, issue.fixed_version, issue.severity)
        )
    return {name: sorted(issues) for name, issues in found.items()}


# --- Debian: OSV all.zip plus the security feeds.tracker -----------------------------------------


@pytest.fixture
def debian_feed(tmp_path: Path) -> list[Path]:
    records = [
        # vulnerable: binary libssl3 and openssl both come from source openssl
        feeds.openssl_dsa(),
        # fixed below the installed version: not affected
        feeds.osv("DSA-5400-1", "Debian:12", "bash", fixed="5.2.15-1", aliases=("CVE-2022-3715",)),
        # unfixed, on a source whose name differs from its binary's (gcc-12 -> libgcc-s1)
        feeds.osv(
            "DEBIAN-CVE-2023-4039",
            "Debian:12",
            "gcc-12",
            aliases=("CVE-2023-4039",),
            cvss=feeds.CVSS_CRITICAL,
        ),
        # withdrawn: never reported
        feeds.osv(
            "DSA-5500-1",
            "Debian:12",
            "shadow",
            fixed="1:4.13+dfsg1-2",
            withdrawn="2024-05-02T00:00:00Z",
        ),
        # another release: not this image's
        feeds.osv("DSA-5000-1", "Debian:11", "openssl", fixed="9.9.9-1"),
        # the same CVE as the tracker's entry below: one issue, not two
        feeds.osv(
            "DEBIAN-CVE-2024-0001",
            "Debian:12",
            "shadow",
            aliases=("CVE-2024-0001",),
            fixed="1:4.13+dfsg1-1+deb12u1",
        ),
        # an ecosystem this matcher does not know: skipped at read
        feeds.osv("FOO-2024-1", "FooLinux:1", "openssl", fixed="1"),
    ]
    zip_path = feeds.write_all_zip(tmp_path / "Debian" / "all.zip", records)
    tracker_path = feeds.write_json(
        tmp_path / "tracker.json",
        feeds.tracker(
            {
                "shadow": {
                    # epoch in the fixed version: 1:4.13+dfsg1-1 < 1:4.13+dfsg1-1+deb12u1
                    "CVE-2024-0001": {
                        "bookworm": feeds.tracker_release(
                            "resolved", "1:4.13+dfsg1-1+deb12u1", "low"
                        )
                    },
                    # without the epoch 4.14 would look newer than the installed 1:4.13
                    "CVE-2024-0002": {
                        "bookworm": feeds.tracker_release("resolved", "4.14-1", "high")
                    },
                },
                "zlib": {
                    "CVE-2024-0003": {
                        "bookworm": feeds.tracker_release("open", urgency="unimportant")
                    }
                },
            }
        ),
    )
    return [zip_path, tracker_path]


def debian_image() -> dict[str, Any]:
    base = dpkg_packages(
        {"Package": "libssl3", "Source": "openssl", "Version": "3.0.11-1~deb12u2"},
        {"Package": "bash", "Version": "5.2.15-2+b2", "Source": "bash (5.2.15-2)"},
        {"Package": "libgcc-s1", "Version": "12.2.0-14", "Source": "gcc-12 (12.2.0-14)"},
        {"Package": "login", "Version": "1:4.13+dfsg1-1", "Source": "shadow"},
        {"Package": "zlib1g", "Version": "1:1.2.13.dfsg-1", "Source": "zlib"},
    )
    added = dpkg_packages({"Package": "openssl", "Version": "3.0.11-1~deb12u2"})
    return scan_document(Distro("debian", "12"), [base, added])


def test_debian_image_against_osv_zip_and_tracker(debian_feed: list[Path]) -> None:
    outcome = read_paths(debian_feed)
    assert [(s.field, s.reason) for s in outcome.skipped] == [
        ("affected", "no distro ecosystem this matcher knows (saw FooLinux:1)")
    ]
    result = AdvisoryIndex(outcome.advisories).match(inventory_from_scan(debian_image()))
    assert result.stream == Stream("debian", "12")
    assert result.warnings == ()
    assert by_package(result) == {
        "libssl3": [("DSA-5600-1", "3.0.13-1~deb12u1", "high")],
        "openssl": [("DSA-5600-1", "3.0.13-1~deb12u1", "high")],
        "libgcc-s1": [("DEBIAN-CVE-2023-4039", None, "critical")],
        "login": [("DEBIAN-CVE-2024-0001", "1:4.13+dfsg1-1+deb12u1", "low")],
        "zlib1g": [("CVE-2024-0003", None, "low")],
    }
    assert result.counts == IssueCounts(critical=1, high=2, medium=0, low=2, unknown=0, fixable=3)
    assert result.counts.total == 5
    # the counts-only path (a re-match of stored scans) counts the same
    fresh = AdvisoryIndex(outcome.advisories)
    assert fresh.count(inventory_from_scan(debian_image())) == result.counts


def test_issue_carries_package_source_aliases_and_introducing_layer(
    debian_feed: list[Path],
) -> None:
    index = AdvisoryIndex(read_paths(debian_feed).advisories)
    result = index.match(inventory_from_scan(debian_image()))
    libssl = next(i for i in result.issues if i.package_name == "libssl3")
    assert (libssl.matched_name, libssl.matched_version) == ("openssl", "3.0.11-1~deb12u2")
    assert libssl.aliases == ("CVE-2024-0727",)
    assert libssl.cvss_score == 7.5 and libssl.cvss_vector == feeds.CVSS_HIGH
    assert (libssl.layer_index, libssl.layer_diff_id) == (0, layer(0).diff_id)
    assert libssl.fixable and libssl.ecosystem == "Debian:12"
    assert libssl.package_ref and libssl.package_ref.startswith("pkg:deb/debian/libssl3@")
    openssl = next(i for i in result.issues if i.package_name == "openssl")
    assert (openssl.layer_index, openssl.layer_diff_id) == (1, layer(1).diff_id)
    gcc = next(i for i in result.issues if i.package_name == "libgcc-s1")
    assert not gcc.fixable and gcc.matched_name == "gcc-12"


def test_image_scanned_before_the_import_shows_the_issue_after_it(debian_feed: list[Path]) -> None:
    stored = inventory_from_scan(debian_image())  # what the control plane keeps of a scan
    assert AdvisoryIndex([]).match(stored).issues == ()
    after = AdvisoryIndex(read_paths(debian_feed).advisories).match(stored)
    assert {i.advisory_id for i in after.issues} >= {"DSA-5600-1"}


# --- Alpine: feeds.secdb, -rN revisions ---------------------------------------------------------


def test_alpine_image_against_secdb(tmp_path: Path) -> None:
    installed = (
        b"P:musl\nV:1.2.5-r0\nA:x86_64\no:musl\n\n"
        b"P:libcrypto3\nV:3.3.1-r0\nA:x86_64\no:openssl\n\n"
        b"P:busybox\nV:1.36.1-r9\nA:x86_64\no:busybox\n\n"
        b"P:ssl_client\nV:1.36.1-r9\nA:x86_64\no:busybox\n\n"
    )
    packages = ApkCataloger().catalog({"lib/apk/db/installed": installed}).packages
    feed = feeds.write_json(
        tmp_path / "v3.20" / "main.json",
        feeds.secdb(
            "v3.20",
            {
                "openssl": {"3.3.1-r1": ["CVE-2024-5535"]},
                "busybox": {"1.36.1-r10": ["CVE-2023-42363"]},  # r9 < r10 as numbers
                "musl": {"1.2.4_git20230717-r5": ["CVE-2025-26519"]},  # below 1.2.5-r0
            },
        ),
    )
    other_release = feeds.write_json(
        tmp_path / "v3.19" / "main.json", feeds.secdb("v3.19", {"musl": {"9.9-r0": ["CVE-2099-1"]}})
    )
    advisories = read_paths([feed, other_release]).advisories
    doc = scan_document(Distro("alpine", "3.20.3"), [packages])
    result = AdvisoryIndex(advisories).match(inventory_from_scan(doc))
    assert by_package(result) == {
        "libcrypto3": [("CVE-2024-5535", "3.3.1-r1", "unknown")],
        "busybox": [("CVE-2023-42363", "1.36.1-r10", "unknown")],
        "ssl_client": [("CVE-2023-42363", "1.36.1-r10", "unknown")],
    }
    assert result.counts.unknown == 3 and result.counts.fixable == 3


# --- rpm: epochs, binary-named feeds, the real SUSE database --------------------------------


def test_rpm_epoch_decides(tmp_path: Path) -> None:
    doc = scan_document(Distro("rhel", "9.4"), [[OPENSSL_LIBS_EL9]])
    feed = feeds.write_json(
        tmp_path / "rh.json",
        [
            feeds.osv(
                "RHSA-2024:0001",
                "Red Hat:enterprise_linux:9::baseos",
                "openssl",
                fixed="1:3.0.7-27.el9",
            ),
            # epoch 0: older than the installed 1:3.0.7 although 3.0.9 > 3.0.7
            feeds.osv(
                "RHSA-2024:0002",
                "Red Hat:enterprise_linux:9::baseos",
                "openssl",
                fixed="3.0.9-1.el9",
            ),
        ],
    )
    inventory = inventory_from_scan(doc)
    assert inventory.packages[0].source_version == "1:3.0.7-25.el9"
    result = AdvisoryIndex(read_paths([feed]).advisories).match(inventory)
    assert by_package(result) == {"openssl-libs": [("RHSA-2024:0001", "1:3.0.7-27.el9", "unknown")]}


def test_real_suse_database_against_binary_and_source_named_records(tmp_path: Path) -> None:
    if not SUSE_NDB.exists():
        pytest.skip(f"real NDB database not present at {SUSE_NDB}")
    packages = (
        RpmCataloger().catalog({"usr/lib/sysimage/rpm/Packages.db": SUSE_NDB.read_bytes()}).packages
    )
    doc = scan_document(Distro("sles", "15.3"), [packages])
    feed = feeds.write_json(
        tmp_path / "suse.json",
        [
            # SUSE's feed names binary packages
            feeds.osv(
                "SUSE-SU-2022:1",
                "SUSE:Linux Enterprise Server 15 SP3",
                "libz1",
                fixed="1.2.11-3.24.1",
            ),
            # a source-package name reaches every binary built from it
            feeds.osv(
                "SUSE-SU-2022:2",
                "SUSE:Linux Enterprise Module for Basesystem 15 SP3",
                "gcc11",
                fixed="11.3.0+git1637-150000.1.9.1",
            ),
            feeds.osv(
                "SUSE-SU-2022:3", "SUSE:Linux Enterprise Server 15 SP3", "bash", fixed="4.4-19.6.1"
            ),
            feeds.osv(
                "SUSE-SU-2022:4", "SUSE:Linux Enterprise Server 15 SP4", "glibc", fixed="9.9-1"
            ),
        ],
    )
    result = AdvisoryIndex(read_paths([feed]).advisories).match(inventory_from_scan(doc))
    assert by_package(result) == {
        "libz1": [("SUSE-SU-2022:1", "1.2.11-3.24.1", "unknown")],
        "libgcc_s1": [("SUSE-SU-2022:2", "11.3.0+git1637-150000.1.9.1", "unknown")],
        "libstdc++6": [("SUSE-SU-2022:2", "11.3.0+git1637-150000.1.9.1", "unknown")],
    }


# --- what cannot be matched ------------------------------------------------------------------


def test_distro_without_a_stream_is_a_warning_not_an_error(debian_feed: list[Path]) -> None:
    doc = scan_document(Distro("fedora", "40"), [[Package("rpm", "bash", "5.2", release="1.fc40")]])
    result = AdvisoryIndex(read_paths(debian_feed).advisories).match(inventory_from_scan(doc))
    assert result.issues == () and result.counts == IssueCounts()
    assert result.warnings == ("distro fedora 40: no advisory stream for it; nothing matched",)


def test_unorderable_installed_version_is_a_warning(tmp_path: Path) -> None:
    feed = feeds.write_json(
        tmp_path / "a.json", feeds.osv("ALPINE-1", "Alpine:v3.20", "odd", fixed="1.0-r1")
    )
    doc = scan_document(
        Distro("alpine", "3.20.0"), [[Package("apk", "odd", "weird!", source_name="odd")]]
    )
    result = AdvisoryIndex(read_paths([feed]).advisories).match(inventory_from_scan(doc))
    assert result.issues == ()
    assert result.warnings == ("odd weird!: ALPINE-1 not checked: not an apk version: 'weird!'",)


def test_bad_scan_document_names_the_field() -> None:
    with pytest.raises(InventoryError, match=r"packages\[0\]\.name: missing"):
        inventory_from_scan({"distro": None, "packages": [{"type": "deb", "fullVersion": "1"}]})
    with pytest.raises(InventoryError, match="packages: expected a list"):
        inventory_from_scan({"packages": {}})


def test_a_dsa_and_the_per_cve_records_beside_it_are_not_counted_twice(tmp_path: Path) -> None:
    # osv.dev's Debian feed holds both: DEBIAN-CVE-… per CVE and the DSA that fixed several
    fixed = "3.0.13-1~deb12u1"
    feed = feeds.write_json(
        tmp_path / "debian.json",
        [
            feeds.osv(
                "DEBIAN-CVE-2024-10", "Debian:12", "openssl", fixed=fixed, aliases=("CVE-2024-10",)
            ),
            feeds.osv(
                "DEBIAN-CVE-2024-11", "Debian:12", "openssl", fixed=fixed, aliases=("CVE-2024-11",)
            ),
            feeds.osv(
                "DSA-5700-1",
                "Debian:12",
                "openssl",
                fixed=fixed,
                aliases=("CVE-2024-10", "CVE-2024-11"),
                cvss=feeds.CVSS_HIGH,
            ),
            feeds.osv("DSA-5701-1", "Debian:12", "openssl", fixed=fixed, aliases=("CVE-2024-12",)),
        ],
    )
    doc = scan_document(
        Distro("debian", "12"),
        [dpkg_packages({"Package": "libssl3", "Source": "openssl", "Version": "3.0.11-1~deb12u2"})],
    )
    result = AdvisoryIndex(read_paths([feed]).advisories).match(inventory_from_scan(doc))
    # the DSA adds no issue of its own, but its severity reaches the per-CVE issues
    assert by_package(result) == {
        "libssl3": [
            ("DEBIAN-CVE-2024-10", fixed, "high"),
            ("DEBIAN-CVE-2024-11", fixed, "high"),
            ("DSA-5701-1", fixed, "unknown"),
        ]
    }
