"""Two control-plane processes on one PostgreSQL drain one scan queue, no scan asked twice.

``crbroker-server relay`` (admitting the integrations' broker tokens from the database) and
two ``crbroker-server control-plane`` replicas with their own worker ids share a real
PostgreSQL started from Debian's packages. Scans are asked for through both replicas; the
agent (its own, for this test) must receive exactly one request per scan, every scan must
succeed at its first attempt, and both replicas must have claimed some of them.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from control_plane.db import open_database
from control_plane.models import Scan
from deploy import stack as st
from deploy.control_plane_client import ControlPlaneClient
from deploy.processes import on_a_free_port
from tests.e2e.conftest import Registry
from tests.support.eventually import eventually
from tests.support.postgres import RunningPostgres, postgres_server  # noqa: F401

pytestmark = [pytest.mark.registry, pytest.mark.timeout(300)]

RETESTS_PER_IMAGE = 6


@pytest.fixture
def replicas(
    registry: Registry,
    postgres_server: RunningPostgres,  # noqa: F811
    tmp_path: Path,
) -> Iterator[tuple[list[ControlPlaneClient], st.Service, str]]:
    database = postgres_server.create_database()
    admin = "adm-" + secrets.token_hex(16)
    shared = {
        "DATABASE_URL": database,
        "CRBROKER_SECRET_KEY": Fernet.generate_key().decode(),
        "CRBROKER_ADMIN_TOKEN": admin,
        "SCAN_POLL_SECONDS": "0.2",
    }
    started: list[st.Service] = []
    try:

        def relay_and_first(first_port: int) -> tuple[st.CrbrokerServer, st.CrbrokerServer]:
            # a cycle: the relay's upstream is the first replica, which calls the relay
            relay = st.start_crbroker_server(
                tmp_path / "relay",
                mode="relay",
                env={**shared, "UPSTREAM_URL": f"http://127.0.0.1:{first_port}"},
            )
            try:
                first = st.start_crbroker_server(
                    tmp_path / "a",
                    mode="control-plane",
                    port=first_port,
                    env={
                        **shared,
                        "BROKER_SERVER_URL": relay.url,
                        "CRBROKER_WORKER_ID": "replica-a",
                    },
                )
            except BaseException:
                relay.stop()
                raise
            return relay, first

        relay, first = on_a_free_port(relay_and_first)
        started += [relay, first]
        replica = {**shared, "BROKER_SERVER_URL": relay.url}
        second = st.start_crbroker_server(
            tmp_path / "b", mode="control-plane", env={**replica, "CRBROKER_WORKER_ID": "replica-b"}
        )
        started.append(second)
        apis = [ControlPlaneClient(first.api_url, admin), ControlPlaneClient(second.api_url, admin)]
        org = apis[0].default_org()
        integration = apis[0].create_integration(
            org, {"integration_type": "generic-cr", "has_broker": True, "max_in_flight": 3}
        )
        agent, client = st.start_agent_and_client(
            tmp_path / "agent",
            token=integration["attributes"]["broker_token"],
            server_url=relay.url,
            registry=registry.cr_env,
            max_active=2,
            startup=st.Startup(ready=(200, 500)),
        )
        started += [agent, client]
        st.wait_for_connection(relay.url, integration["attributes"]["broker_token"])
        yield apis, agent, database
    finally:
        for service in reversed(started):
            service.stop()


def _claims(database: str) -> list[tuple[str, str | None, int]]:
    async def read() -> list[tuple[str, str | None, int]]:
        db = await open_database(database, run_migrations=False)
        try:
            async with db.sessions() as session:
                rows = await session.execute(select(Scan.status, Scan.claimed_by, Scan.attempts))
                return [(s, c, a) for s, c, a in rows]
        finally:
            await db.close()

    return asyncio.run(read())


def test_two_replicas_drain_one_queue_and_no_scan_is_asked_twice(
    replicas: tuple[list[ControlPlaneClient], st.Service, str], registry: Registry
) -> None:
    apis, agent, database = replicas
    org = apis[0].default_org()
    (integration,) = apis[0].all_pages(f"/rest/orgs/{org}/integrations")
    projects = []
    for n, sample in enumerate(registry.images[:3]):
        api = apis[n % 2]
        job = api.wait_import(api.import_image(org, integration["id"], sample.reference))
        assert job["status"] == "complete", job
        projects.append(job["logs"][0]["projects"][0]["projectId"])
    for round_ in range(RETESTS_PER_IMAGE):
        for n, project in enumerate(projects):
            apis[(n + round_) % 2].retest(org, project)
    expected = len(projects) * (1 + RETESTS_PER_IMAGE)

    def all_finished() -> list[tuple[str, str | None, int]]:
        claims = _claims(database)
        assert len(claims) == expected, claims
        assert all(s in ("succeeded", "failed") for s, _, _ in claims), claims
        return claims

    claims = eventually(all_finished, timeout=180, interval=0.5)
    assert {status for status, _, _ in claims} == {"succeeded"}, claims
    assert {attempts for _, _, attempts in claims} == {1}
    workers = {worker for _, worker, _ in claims}
    assert workers == {"replica-a", "replica-b"}, workers
    # the agent was asked exactly once per scan
    accepted = agent.log_text().count('"job accepted"')
    assert accepted == expected, accepted
    for project in projects:
        history = apis[1].scans(org, project)
        assert len(history) == 1 + RETESTS_PER_IMAGE
