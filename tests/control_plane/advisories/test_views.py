"""``GET /rest/orgs/{org_id}/issues?scan_item.id=…`` on a running API app (SQLite and
PostgreSQL): a project's issues after an import, paged, filtered, errors named."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from control_plane.advisories import views
from control_plane.advisories.cli import import_paths
from control_plane.api.app import create_api_app
from control_plane.db import Database
from control_plane.encryption import SecretBox
from cr_agent.sbom.cyclonedx import to_cyclonedx_json
from tests.control_plane import factories
from tests.control_plane.advisories import feeds
from tests.control_plane.advisories.test_scan_issues import DEBIAN_IMAGE, debian_feed, landed_scan

VERSION = "2024-05-31"


@pytest.fixture
async def base_url(db: Database, box: SecretBox) -> AsyncIterator[str]:
    app = create_api_app(db, box)
    views.add_routes(app.router)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def _get(http: ClientSession, url: str, token: str) -> tuple[int, Any]:
    async with http.get(url, headers={"Authorization": f"token {token}"}) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_project_issues_paged_and_filtered(
    db: Database, base_url: str, tmp_path: Path
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
    path = f"/rest/orgs/{org}/issues?version={VERSION}&scan_item.id={project.id}"
    async with ClientSession() as http:
        url = f"{base_url}{path}&scan_item.type=project&limit=10"
        every: list[dict[str, Any]] = []
        sizes = []
        while url:
            status, page = await _get(http, url, token)
            assert status == 200, page
            every += page["data"]
            sizes.append(len(page["data"]))
            url = base_url + page["links"]["next"] if "next" in page["links"] else ""
        assert sizes == [10, 10, 7]
        assert len({i["id"] for i in every}) == 27
        found = sorted(
            (
                i["attributes"]["coordinates"][0]["representations"][0]["dependency"][
                    "package_name"
                ],
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
            and i["relationships"]["scan_item"]["data"]
            == {"type": "project", "id": str(project.id)}
            for i in every
        )
        status, critical = await _get(
            http, f"{base_url}{path}&effective_severity_level=critical", token
        )
        assert [i["attributes"]["key"] for i in critical["data"]] == ["DEBIAN-CVE-2024-2:login"]
        status, resolved = await _get(http, f"{base_url}{path}&status=resolved", token)
        assert status == 200 and resolved["data"] == []

        status, missing = await _get(
            http, f"{base_url}/rest/orgs/{org}/issues?version={VERSION}", token
        )
        assert status == 400
        assert missing["errors"][0]["source"] == {"parameter": "scan_item.id"}
        status, _ = await _get(http, f"{base_url}{path}", other.token)
        assert status == 404  # another org's caller sees nothing
