"""``crbroker-server advisories import PATH...`` as a console command in a subprocess, against
a SQLite data directory and a PostgreSQL URL: the counts it prints, the skipped record on
stderr, and the API showing the project's issues afterwards without a rescan."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from control_plane.db import Database
from cr_agent.sbom.cyclonedx import to_cyclonedx_json
from tests.control_plane import factories
from tests.control_plane.advisories import feeds
from tests.control_plane.advisories.test_scan_issues import DEBIAN_IMAGE, debian_feed, landed_scan
from tests.control_plane.api_client import ApiClient

COMMAND = str(Path(sys.executable).with_name("crbroker-server"))


async def _run(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CRBROKER_DATA_DIR")}
    if database_url.startswith("sqlite"):
        # the data directory alone: its default database is the file the test's fixture opened
        env["CRBROKER_DATA_DIR"] = str(Path(database_url.split("///", 1)[1]).parent)
    else:
        env["DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        COMMAND,
        "advisories",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_import_command_then_the_api_shows_the_issues(
    db: Database, api: ApiClient, database_url: str, tmp_path: Path
) -> None:
    async with db.sessions() as session, session.begin():
        account = await factories.account(session)
        project = await landed_scan(
            session, account.org, "library/app", to_cyclonedx_json(DEBIAN_IMAGE).encode()
        )
    broken = feeds.osv("DSA-9-1", "Debian:12", "zlib")
    broken["affected"][0]["ranges"] = "not a list"
    bad = feeds.write_json(tmp_path / "bad.json", broken)

    status, out, err = await _run(database_url, "import", str(debian_feed(tmp_path)), str(bad))
    assert status == 0, err
    assert "advisories: 2 new, 0 updated, 0 withdrawn, 0 unchanged, 1 skipped" in out
    assert "re-matched 1 latest scans: 3 issues" in out
    assert f"skipped {bad}" in err and "DSA-9-1" in err and "ranges" in err

    api.token = account.token
    base = f"/rest/orgs/{account.org.id}"
    shown = (await api.get(f"{base}/projects/{project.id}?meta.latest_issue_counts=true")).json
    counts = shown["data"]["meta"]["latest_issue_counts"]
    assert (counts["critical"], counts["high"], counts["medium"], counts["low"]) == (1, 2, 0, 0)
    issues = (await api.get(f"{base}/issues?scan_item.id={project.id}")).json["data"]
    assert sorted(i["attributes"]["key"] for i in issues) == [
        "DEBIAN-CVE-2024-2:login",
        "DSA-1-1:libssl3",
        "DSA-1-1:openssl",
    ]

    # the same files again: nothing changes, nothing is re-matched
    status, out, _ = await _run(database_url, "import", str(debian_feed(tmp_path)))
    assert status == 0 and "0 new, 0 updated, 0 withdrawn, 2 unchanged, 0 skipped" in out
    assert "re-matched" not in out

    status, _, err = await _run(database_url, "import", str(tmp_path / "missing.json"))
    assert status == 1 and "missing.json" in err and "cannot read" in err
