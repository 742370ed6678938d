"""Vulnerabilities end to end, through the real stack of ``test_control_plane`` (crbroker-server,
our broker client and agent, Debian's docker-registry): a Debian-like image built in code is
imported and scanned; advisories written here in OSV's format are uploaded over the API (one
affecting its libssl3 through the source package openssl, one fixed below the installed curl);
the project's counts and issues show exactly the affecting one, with the installed and fixed
versions and the layer that brought the package in. Then an update of that advisory, imported
with ``crbroker-server advisories import`` (fixed below what is installed), clears it: the
counts change and no image is scanned again."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from deploy import stack as st
from tests.e2e import test_control_plane as control_plane
from tests.e2e.conftest import Registry
from tests.e2e.test_control_plane import Plane

plane = control_plane.plane  # the same stack, as a fixture of this module

pytestmark = [pytest.mark.registry, pytest.mark.timeout(240)]

CVSS_HIGH = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"  # 7.5


def _osv(record_id: str, package: str, fixed: str, modified: str) -> dict[str, Any]:
    return {
        "schema_version": "1.6.0",
        "id": record_id,
        "modified": modified,
        "published": "2024-01-25T00:00:00Z",
        "aliases": [f"CVE-2024-{record_id[4:8]}"],
        "summary": f"{package}: e2e advisory",
        "severity": [{"type": "CVSS_V3", "score": CVSS_HIGH}],
        "affected": [
            {
                "package": {"ecosystem": "Debian:12", "name": package},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
            }
        ],
    }


def _counts(stack: Plane, project_id: str) -> dict[str, Any]:
    _, _, answer = stack.api.call(
        "GET",
        f"/rest/orgs/{stack.org}/projects/{project_id}",
        query={"meta.latest_issue_counts": "true"},
    )
    counts: dict[str, Any] = answer["data"]["meta"]["latest_issue_counts"]
    return counts


def _levels(counts: dict[str, Any]) -> tuple[int, int, int, int]:
    return counts["critical"], counts["high"], counts["medium"], counts["low"]


def _issues(stack: Plane, project_id: str) -> list[dict[str, Any]]:
    return stack.api.all_pages(
        f"/rest/orgs/{stack.org}/issues",
        {"scan_item.id": project_id, "scan_item.type": "project"},
    )


@pytest.mark.parametrize("plane", ["our-client"], indirect=True)
def test_advisories_imported_later_show_on_a_scanned_image_without_a_rescan(
    plane: Plane, registry: Registry, tmp_path: Path
) -> None:
    sample = next(s for s in registry.images if s.repository == "demo/debian-like")
    assert sample.packages["libssl3"] == "3.0.11-1~deb12u2"  # from source openssl
    assert sample.packages["curl"] == "7.88.1-10+deb12u5"
    job = plane.api.wait_import(
        plane.api.import_image(plane.org, plane.integration, sample.reference)
    )
    assert job["status"] == "complete", job
    project_id = job["logs"][0]["projects"][0]["projectId"]
    scans_before = plane.api.scans(plane.org, project_id)

    affecting = _osv("DSA-5600-1", "openssl", "3.0.13-1~deb12u1", "2024-01-30T00:00:00Z")
    not_affecting = _osv("DSA-5700-1", "curl", "7.88.1-10+deb12u1", "2024-02-01T00:00:00Z")
    _, _, uploaded = plane.api.call(
        "POST", "/rest/advisories", body=[affecting, not_affecting], content_type="application/json"
    )
    attributes = uploaded["data"]["attributes"]
    assert (attributes["new"], attributes["skipped"]) == (2, 0)
    assert attributes["rematched"]["scans"] >= 1

    counts = _counts(plane, project_id)
    assert _levels(counts) == (0, 1, 0, 0) and counts["updated_at"] is not None
    (issue,) = _issues(plane, project_id)
    shown = issue["attributes"]
    assert shown["problems"][0]["id"] == "DSA-5600-1"
    assert {"id": "CVE-2024-5600", "source": "CVE", "type": "vulnerability"} in shown["problems"]
    dependency = shown["coordinates"][0]["representations"][0]["dependency"]
    assert dependency == {"package_name": "libssl3", "package_version": "3.0.11-1~deb12u2"}
    assert shown["installed_version"] == "3.0.11-1~deb12u2"
    assert shown["fixed_version"] == "3.0.13-1~deb12u1"
    assert shown["source_package"] == "openssl"
    assert shown["effective_severity_level"] == "high" and shown["cvss_score"] == 7.5
    # libssl3 came with the first layer (the image's rootfs)
    assert shown["layer"] == {"index": 0, "diff_id": sample.image.diff_ids[0]}

    # an update: the fix was backported below what is installed -> no longer affected
    update = tmp_path / "dsa-5600-1.json"
    update.write_text(
        json.dumps(_osv("DSA-5600-1", "openssl", "3.0.11-1~deb12u1", "2024-03-01T00:00:00Z"))
    )
    done = subprocess.run(
        [*st.command("crbroker-server", "control_plane"), "advisories", "import", str(update)],
        env=plane.server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "0 new, 1 updated" in done.stdout and "re-matched" in done.stdout
    after = _counts(plane, project_id)
    assert _levels(after) == (0, 0, 0, 0)
    assert after["updated_at"] is not None and after["updated_at"] >= counts["updated_at"]
    assert _issues(plane, project_id) == []
    assert plane.api.scans(plane.org, project_id) == scans_before  # nothing was scanned again
