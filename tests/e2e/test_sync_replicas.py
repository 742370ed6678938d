"""Registry sync with two control-plane processes on one PostgreSQL: every run is claimed
and carried out by exactly one of them, and no image is imported (or its scan queued) twice.

The stack is the replicas test's (``crbroker-server relay`` + two ``control-plane``
replicas + an agent and our broker client, in front of the session's docker-registry).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from control_plane.db import open_database
from control_plane.models import Scan
from control_plane.sync.models import SyncRun
from deploy import stack as st
from deploy.control_plane_client import ControlPlaneClient
from tests.e2e.test_control_plane_replicas import replicas  # noqa: F401 - the fixture
from tests.support.eventually import eventually
from tests.support.postgres import postgres_server  # noqa: F401 - what it needs

pytestmark = [pytest.mark.registry, pytest.mark.timeout(300)]

VERSION = "2025-09-17"
RUNS = 4


def _rows(database: str) -> tuple[list[tuple[str, str | None, int]], int]:
    async def read() -> tuple[list[tuple[str, str | None, int]], int]:
        db = await open_database(database, run_migrations=False)
        try:
            async with db.sessions() as session:
                runs = await session.execute(
                    select(SyncRun.status, SyncRun.claimed_by, SyncRun.attempts)
                )
                scans = await session.scalar(
                    select(func.count()).select_from(Scan).where(Scan.reason == "sync")
                )
                return [(s, c, a) for s, c, a in runs], scans or 0
        finally:
            await db.close()

    return asyncio.run(read())


def _wait(api: ControlPlaneClient, path: str) -> dict[str, Any]:
    def final() -> dict[str, Any]:
        _, _, answer = api.call("GET", path, query={"version": VERSION})
        attributes: dict[str, Any] = answer["data"]["attributes"]
        assert attributes["status"] in ("completed", "failed"), attributes
        return attributes

    return eventually(final, timeout=90, interval=0.3)


def test_two_replicas_run_each_sync_once(
    replicas: tuple[list[ControlPlaneClient], st.Service, str],  # noqa: F811
) -> None:
    apis, _, database = replicas
    org = apis[0].default_org()
    (integration,) = apis[0].all_pages(f"/rest/orgs/{org}/integrations")
    path = f"/rest/orgs/{org}/container_import/{integration['id']}/policy"
    policy = {"name": "all", "import_policy": {"type": "ImportAll"}}
    body = {"data": {"type": "container_registry_import_policy", "attributes": {"policy": policy}}}
    apis[0].call("POST", path, query={"version": VERSION}, body=body)
    _, _, runs = apis[1].call("GET", f"{path}/runs", query={"version": VERSION})
    first = _wait(apis[1], f"{path}/runs/{runs['data'][0]['id']}")
    assert first["status"] == "completed" and first["imported"] == first["listed"] > 0, first
    for n in range(1, RUNS):
        _, _, run = apis[n % 2].call("POST", f"{path}/run", query={"version": VERSION})
        done = _wait(apis[(n + 1) % 2], f"{path}/runs/{run['data']['id']}")
        assert (done["status"], done["imported"]) == ("completed", 0), done
    rows, sync_scans = _rows(database)
    assert len(rows) == RUNS
    assert {(status, attempts) for status, _, attempts in rows} == {("completed", 1)}, rows
    assert sync_scans == first["listed"]  # each image imported and queued once
    projects = apis[0].projects(org)
    assert len(projects) == len({p["attributes"]["name"] for p in projects}) == first["listed"]
