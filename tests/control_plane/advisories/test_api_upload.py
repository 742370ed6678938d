"""``POST /rest/advisories`` on the running API (SQLite and PostgreSQL), answers checked
against the OpenAPI document: an admin uploads OSV JSON, an all.zip, Alpine secdb and the
Debian tracker's JSON; the counts come back as JSON:API, every latest scan is matched again,
bad bodies and non-admin tokens are refused and store nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from control_plane.advisories import views
from control_plane.db import Database
from cr_agent.sbom.cyclonedx import to_cyclonedx_json
from tests.control_plane import factories
from tests.control_plane.advisories import feeds
from tests.control_plane.advisories.test_scan_issues import DEBIAN_IMAGE, debian_feed, landed_scan
from tests.control_plane.api_client import Answer, ApiClient


async def _upload(
    api: ApiClient, data: bytes, token: str, kind: str = "application/json"
) -> Answer:
    return await api.call("POST", "/rest/advisories", raw=data, content_type=kind, token=token)


def _counts(answer: Answer) -> dict[str, Any]:
    assert answer.status == 200, answer.json
    data = answer.json["data"]
    assert data["type"] == "advisory_import"
    attributes: dict[str, Any] = data["attributes"]
    return attributes


async def test_an_admin_uploads_advisories_and_projects_are_matched_again(
    db: Database, api: ApiClient, tmp_path: Path
) -> None:
    async with db.sessions() as session, session.begin():
        admin = await factories.account(session, admin=True)
        member = await factories.account(session)
        project = await landed_scan(
            session, member.org, "library/app", to_cyclonedx_json(DEBIAN_IMAGE).encode()
        )
    feed = debian_feed(tmp_path).read_bytes()

    refused = await _upload(api, feed, member.token)
    assert refused.status == 403 and "admin" in refused.error()["detail"]
    anonymous = await api.call("POST", "/rest/advisories", raw=feed)
    assert anonymous.status == 401

    first = _counts(await _upload(api, feed, admin.token))
    assert (first["new"], first["updated"], first["unchanged"], first["skipped"]) == (2, 0, 0, 0)
    assert first["rematched"] == {"scans": 1, "issues": 3, "unreadable": 0}
    shown = await api.get(
        f"/rest/orgs/{member.org.id}/projects/{project.id}?meta.latest_issue_counts=true",
        token=member.token,
    )
    counts = shown.json["data"]["meta"]["latest_issue_counts"]
    assert (counts["critical"], counts["high"]) == (1, 2) and counts["updated_at"]

    again = _counts(await _upload(api, feed, admin.token))
    assert (again["new"], again["unchanged"], again["rematched"]) == (0, 2, None)

    # a newer copy of DSA-1-1 fixed below what is installed: the image is no longer affected
    fixed = feeds.osv(
        "DSA-1-1", "Debian:12", "openssl", fixed="3.0.0-1", modified="2024-06-01T00:00:00Z"
    )
    update = _counts(await _upload(api, json.dumps(fixed).encode(), admin.token))
    assert (update["new"], update["updated"]) == (0, 1)
    assert update["rematched"] == {"scans": 1, "issues": 1, "unreadable": 0}


async def test_every_upload_format_is_recognised_from_its_content(
    db: Database, api: ApiClient, tmp_path: Path
) -> None:
    async with db.sessions() as session, session.begin():
        admin = await factories.account(session, admin=True)
    archive = feeds.write_all_zip(
        tmp_path / "all.zip",
        [feeds.osv("ALPINE-CVE-2024-1", "Alpine:v3.20", "busybox", fixed="1.36.1-r1")],
        raw={"broken.json": b"{not json"},
    )
    zipped = _counts(await _upload(api, archive.read_bytes(), admin.token, "application/zip"))
    assert (zipped["new"], zipped["skipped"]) == (1, 1)
    (skip,) = zipped["skipped_records"]
    assert skip["record"] == "upload:broken.json" and "not JSON" in skip["reason"]

    secdb = feeds.secdb("v3.20", {"musl": {"1.2.5-r1": ["CVE-2024-7"]}})
    assert _counts(await _upload(api, json.dumps(secdb).encode(), admin.token))["new"] == 1

    tracker = feeds.tracker(
        {"zlib": {"CVE-2023-45853": {"bookworm": feeds.tracker_release("open")}}}
    )
    octets = "application/octet-stream"
    assert _counts(await _upload(api, json.dumps(tracker).encode(), admin.token, octets))["new"]


async def test_bad_uploads_are_refused_naming_the_problem(
    db: Database, api: ApiClient, tmp_path: Path
) -> None:
    async with db.sessions() as session, session.begin():
        admin = await factories.account(session, admin=True)
    for body, words in (
        (b"", "empty"),
        (b"\x00\x01 not json", "not JSON"),
        (b'{"something": "else"}', "not an OSV record"),
    ):
        answer = await _upload(api, body, admin.token)
        assert answer.status == 400, (body, answer.json)
        assert words in answer.error()["detail"]
    extra = await api.call("POST", "/rest/advisories?dry_run=true", raw=b"{}", token=admin.token)
    assert extra.status == 400 and extra.error()["source"] == {"parameter": "dry_run"}
    nothing = _counts(await _upload(api, debian_feed(tmp_path).read_bytes(), admin.token))
    assert nothing["new"] == 2  # nothing was stored by the refused uploads


async def test_an_upload_over_the_limit_is_refused_with_413(
    db: Database, api: ApiClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with db.sessions() as session, session.begin():
        admin = await factories.account(session, admin=True)
    feed = debian_feed(tmp_path).read_bytes()
    monkeypatch.setattr(views, "MAX_DOCUMENT_BYTES", len(feed) - 1)
    refused = await _upload(api, feed, admin.token)
    assert refused.status == 413 and str(len(feed) - 1) in refused.error()["detail"]
    monkeypatch.setattr(views, "MAX_DOCUMENT_BYTES", len(feed))
    assert _counts(await _upload(api, feed, admin.token))["new"] == 2
