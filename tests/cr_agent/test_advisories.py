"""Matches in the agent's own outputs: CycloneDX ``vulnerabilities`` (valid 1.6) and the
native JSON's ``vulnerabilities`` and counts."""

from __future__ import annotations

import json
from pathlib import Path

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from control_plane.advisories.advisory_files import read_paths
from cr_agent.advisories import match_scan
from cr_agent.catalogers.base import Distro
from cr_agent.sbom.cyclonedx import to_cyclonedx_json
from cr_agent.sbom.native import to_native_json
from tests.control_plane.advisories import feeds
from tests.control_plane.advisories.scans import OPENSSL_LIBS_EL9, dpkg_packages, scan_result


def _debian_scan():
    return scan_result(
        Distro("debian", "12"),
        [
            dpkg_packages(
                {"Package": "bash", "Version": "5.2.15-2+b2", "Source": "bash (5.2.15-2)"}
            ),
            dpkg_packages(
                {"Package": "libssl3", "Source": "openssl", "Version": "3.0.11-1~deb12u2"}
            ),
        ],
    )


def _feed(tmp_path: Path):
    path = feeds.write_json(
        tmp_path / "feed.json",
        [
            feeds.openssl_dsa(),
            feeds.osv("DEBIAN-CVE-2024-9", "Debian:12", "openssl"),
            feeds.osv("BAD", "Debian:12", "bash", fixed="not a version!"),
        ],
    )
    return read_paths([path])


def test_cyclonedx_vulnerabilities_point_at_the_components(tmp_path: Path) -> None:
    result = _debian_scan()
    match, notes = match_scan(result, _feed(tmp_path))
    assert notes == [
        f"advisories: skipped {tmp_path / 'feed.json'}[2] (BAD): "
        "affected[0].ranges[0].events[1].fixed: not a dpkg version: 'not a version!'"
    ]
    text = to_cyclonedx_json(result, match)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    doc = json.loads(text)
    libssl = next(c for c in doc["components"] if c.get("name") == "libssl3")
    by_id = {v["id"]: v for v in doc["vulnerabilities"]}
    assert set(by_id) == {"DSA-5600-1", "DEBIAN-CVE-2024-9"}
    fixed = by_id["DSA-5600-1"]
    assert fixed["affects"] == [
        {
            "ref": libssl["bom-ref"],
            "versions": [{"version": "3.0.11-1~deb12u2", "status": "affected"}],
        }
    ]
    assert fixed["ratings"] == [
        {"score": 7.5, "severity": "high", "method": "CVSSv31", "vector": feeds.CVSS_HIGH}
    ]
    assert fixed["references"] == [{"id": "CVE-2024-0727", "source": {"name": "CVE"}}]
    assert fixed["recommendation"] == "Upgrade libssl3 to 3.0.13-1~deb12u1 or later"
    unfixed = by_id["DEBIAN-CVE-2024-9"]
    assert unfixed["ratings"] == [{"severity": "unknown", "method": "other"}]
    assert "recommendation" not in unfixed
    # without a match the document is as before
    assert "vulnerabilities" not in json.loads(to_cyclonedx_json(result))


def test_native_json_lists_issues_with_layer_and_counts(tmp_path: Path) -> None:
    result = _debian_scan()
    match, _ = match_scan(result, _feed(tmp_path))
    doc = json.loads(to_native_json(result, match))
    assert doc["vulnerabilityCounts"] == {
        "critical": 0,
        "high": 1,
        "medium": 0,
        "low": 0,
        "unknown": 1,
        "fixable": 1,
        "total": 2,
    }
    [fixed] = [v for v in doc["vulnerabilities"] if v["id"] == "DSA-5600-1"]
    assert doc["packages"][fixed["packageIndex"]]["name"] == "libssl3"
    assert (fixed["matchedName"], fixed["layer"]["index"]) == ("openssl", 1)


def test_rpm_scan_matches_with_the_binary_epoch(tmp_path: Path) -> None:
    result = scan_result(Distro("rhel", "9.4"), [[OPENSSL_LIBS_EL9]])
    path = feeds.write_json(
        tmp_path / "rh.json",
        feeds.osv(
            "RHSA-1", "Red Hat:enterprise_linux:9::baseos", "openssl", fixed="1:3.0.7-27.el9"
        ),
    )
    match, _ = match_scan(result, read_paths([path]))
    assert [(i.advisory_id, i.matched_version) for i in match.issues] == [
        ("RHSA-1", "1:3.0.7-25.el9")
    ]
