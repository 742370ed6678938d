"""Projects' ``meta.latest_issue_counts`` on the running API (SQLite and PostgreSQL): zeros
never updated until the latest scan is matched, then its stored counts, in a list and alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from control_plane.advisories.cli import import_paths, rematch
from control_plane.db import Database
from control_plane.projects.services import import_project
from control_plane.targets.services import get_or_create_target
from cr_agent.sbom.cyclonedx import to_cyclonedx_json
from tests.control_plane import factories
from tests.control_plane.advisories.test_scan_issues import DEBIAN_IMAGE, debian_feed, landed_scan
from tests.control_plane.api_client import ApiClient

NEVER = {"critical": 0, "high": 0, "medium": 0, "low": 0, "updated_at": None}


def _counts(project: dict[str, Any]) -> dict[str, Any]:
    counts: dict[str, Any] = project["meta"]["latest_issue_counts"]
    return counts


async def test_latest_issue_counts_follow_the_matched_latest_scan(
    db: Database, api: ApiClient, tmp_path: Path
) -> None:
    async with db.sessions() as session, session.begin():
        account = await factories.account(session)
        scanned = await landed_scan(
            session, account.org, "library/app", to_cyclonedx_json(DEBIAN_IMAGE).encode()
        )
        target = await get_or_create_target(session, account.org.id, None, "library/new")
        unscanned = await import_project(session, target, "1", integration=None, importer_id=None)
        assert unscanned is not None
    api.token = account.token
    base = f"/rest/orgs/{account.org.id}/projects"
    listed = (await api.get(f"{base}?meta.latest_issue_counts=true")).json["data"]
    assert [_counts(p) for p in listed] == [NEVER, NEVER]  # nothing matched yet

    await import_paths(db, [debian_feed(tmp_path)])
    await rematch(db)

    listed = (await api.get(f"{base}?meta.latest_issue_counts=true")).json["data"]
    by_id = {p["id"]: _counts(p) for p in listed}
    matched = by_id[str(scanned.id)]
    assert matched["updated_at"] is not None
    # DSA-1-1 (high, on openssl and libssl3 from source openssl), DEBIAN-CVE-2024-2 on login
    assert {k: v for k, v in matched.items() if k != "updated_at"} == {
        "critical": 1,
        "high": 2,
        "medium": 0,
        "low": 0,
    }
    assert by_id[str(unscanned.id)] == NEVER
    one = (await api.get(f"{base}/{scanned.id}?meta.latest_issue_counts=true")).json["data"]
    assert _counts(one) == matched
    without = (await api.get(f"{base}/{scanned.id}")).json["data"]
    assert "latest_issue_counts" not in without["meta"]
