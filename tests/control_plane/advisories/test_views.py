"""``GET /rest/orgs/{org_id}/issues?scan_item.id=…`` on the running API app (SQLite and
PostgreSQL), every answer checked against the OpenAPI document: a project's issues after an
import, paged, filtered, errors named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from control_plane.advisories.cli import import_paths
from control_plane.db import Database
from cr_agent.sbom.cyclonedx import to_cyclonedx_json
from tests.control_plane import factories
from tests.control_plane.advisories import feeds
from tests.control_plane.advisories.test_scan_issues import DEBIAN_IMAGE, debian_feed, landed_scan
from tests.control_plane.api_client import ApiClient


async def test_project_issues_paged_and_filtered(
    db: Database, api: ApiClient, tmp_path: Path
) -> None:
    async with db.sessions() as session, session.begin():
        account = await factories.account(session)
        other = await factories.account(session)
        project = await landed_scan(
            session, account.org, "library/app", to_cyclonedx_json(DEBIAN_IMAGE).encode()
        )
    more = feeds.write_json(
        tmp_path / "more.json",
        [feeds.osv(f"DEBIAN-CVE-2024-{n}", "Debian:12", "openssl") for n in range(100, 112)],
    )
    await import_paths(db, [debian_feed(tmp_path), more])  # 3 + 2 x 12 issues
    org, token = account.org.id, account.token
    path = f"/rest/orgs/{org}/issues?scan_item.id={project.id}"
    url = f"{path}&scan_item.type=project&limit=10"
    every: list[dict[str, Any]] = []
    sizes = []
    while url:
        answer = await api.get(url, token=token)
        assert answer.status == 200, answer.json
        page = answer.json
        every += page["data"]
        sizes.append(len(page["data"]))
        url = page["links"].get("next", "")
    assert sizes == [10, 10, 7]
    assert len({i["id"] for i in every}) == 27
    found = sorted(
        (
            i["attributes"]["coordinates"][0]["representations"][0]["dependency"]["package_name"],
            i["attributes"]["problems"][0]["id"],
            i["attributes"]["effective_severity_level"],
            i["attributes"]["fixed_version"],
        )
        for i in every
    )
    assert [f for f in found if f[1] != "DSA-1-1" and f[0] != "login"][:1] == [
        ("libssl3", "DEBIAN-CVE-2024-100", "info", None)
    ]
    assert [f for f in found if f[1] in ("DSA-1-1", "DEBIAN-CVE-2024-2")] == [
        ("libssl3", "DSA-1-1", "high", "3.0.13-1~deb12u1"),
        ("login", "DEBIAN-CVE-2024-2", "critical", None),
        ("openssl", "DSA-1-1", "high", "3.0.13-1~deb12u1"),
    ]
    assert all(
        i["type"] == "issue"
        and i["relationships"]["scan_item"]["data"] == {"type": "project", "id": str(project.id)}
        for i in every
    )
    critical = (await api.get(f"{path}&effective_severity_level=critical", token=token)).json
    assert [i["attributes"]["key"] for i in critical["data"]] == ["DEBIAN-CVE-2024-2:login"]
    resolved = await api.get(f"{path}&status=resolved", token=token)
    assert resolved.status == 200 and resolved.json["data"] == []

    missing = await api.get(f"/rest/orgs/{org}/issues", token=token)
    assert missing.status == 400
    assert missing.error()["source"] == {"parameter": "scan_item.id"}
    hidden = await api.get(path, token=other.token)
    assert hidden.status == 404  # another org's caller sees nothing
