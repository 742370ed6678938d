"""Registry sync end to end: ``crbroker-server`` (relay + control plane), our broker client
and our agent in front of Debian's docker-registry (its own, so the listing is known).

A dry run, then the policy's first run, then new tags pushed and an old one deleted, the next
run without and then with ``delete_images``, and a project a person deleted that the sync
does not bring back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from deploy import stack as st
from deploy.control_plane_client import ApiError, ControlPlaneClient
from tests.support.eventually import eventually
from tests.support.images import Layer, Pusher, build_image, os_release, push
from tests.support.registry import RunningRegistry, require_registry, running_registry
from tests.support.sync_stack import Connected, connect_registry

pytestmark = [pytest.mark.registry, pytest.mark.timeout(300)]

USER = f"sync-reader-{secrets.token_hex(3)}"
PASSWORD = f"sync-Pw-{secrets.token_hex(8)}"
DRY_RUN_VERSION = "2025-09-17"


@dataclass
class Stack:
    registry: RunningRegistry
    api: ControlPlaneClient
    org: str
    integration: str
    digests: dict[str, str]
    client: st.Service

    @property
    def policy_path(self) -> str:
        return f"/rest/orgs/{self.org}/container_import/{self.integration}/policy"


def push_tag(registry: RunningRegistry, repository: str, tag: str, build: int = 1) -> str:
    """A small Alpine-like image of its own (its own digest) as ``repository:tag``."""
    image = build_image(
        [
            Layer(
                {
                    "etc/os-release": os_release("alpine", "3.20.0"),
                    "etc/build-tag": f"{repository}:{tag} build {build}\n".encode(),
                }
            )
        ]
    )
    return push(registry.url, repository, image, tag=tag, username=USER, password=PASSWORD)


def delete_image(registry: RunningRegistry, repository: str, digest: str) -> None:
    Pusher(registry.url, USER, PASSWORD).request(
        "DELETE",
        f"/v2/{repository}/manifests/{digest}",
        scope=f"repository:{repository}:pull,push,delete",
        ok=(202,),
    )


def _connect(
    api: ControlPlaneClient, org: str, server: st.Service, workdir: Path, registry: RunningRegistry
) -> Connected:
    return connect_registry(
        api, org, server, workdir, registry_url=registry.url, username=USER, password=PASSWORD
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_registry()
    workdir = tmp_path_factory.mktemp("sync-e2e")
    admin = "adm-" + secrets.token_hex(16)
    with running_registry("htpasswd", username=USER, password=PASSWORD) as registry:
        digests = {
            f"{repo}:{tag}": push_tag(registry, repo, tag)
            for repo, tag in [
                ("app/web", "v1"),
                ("app/web", "v2"),
                ("app/web", "v3"),
                ("app/api", "1.0"),
                ("app/api", "1.1"),
            ]
        }
        stoppers = []
        try:
            server = st.start_crbroker_server(
                workdir,
                env={"CRBROKER_ADMIN_TOKEN": admin, "SYNC_POLL_SECONDS": "0.5"},
            )
            stoppers.append(server.stop)
            api = ControlPlaneClient(server.api_url, admin)
            org = api.default_org()
            pair = _connect(api, org, server, workdir, registry)
            stoppers += pair.stoppers
            yield Stack(registry, api, org, pair.integration, digests, pair.client)
        finally:
            for stop in reversed(stoppers):
                stop()


def body(policy: dict[str, Any], ident: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "container_registry_import_policy",
        "attributes": {"policy": policy},
    }
    if ident:
        data["id"] = ident
    return {"data": data}


def call(stack: Stack, method: str, path: str, **kw: Any) -> tuple[int, dict[str, str], Any]:
    return stack.api.call(method, path, query={"version": DRY_RUN_VERSION}, **kw)


def _finished(fetch: Callable[[], dict[str, Any]], timeout: float) -> dict[str, Any]:
    """The attributes once their status is final (else the last ones, for the caller)."""

    def final() -> dict[str, Any]:
        attributes = fetch()
        assert attributes["status"] in ("completed", "failed"), attributes
        return attributes

    with contextlib.suppress(AssertionError):
        return eventually(final, timeout=timeout, interval=0.3)
    return fetch()


def wait_dry_run(stack: Stack, location: str) -> dict[str, Any]:
    def fetch() -> dict[str, Any]:
        _, _, answer = stack.api.call("GET", location, query={"version": DRY_RUN_VERSION})
        return dict(answer["data"]["attributes"])

    return _finished(fetch, 60)


def wait_run(stack: Stack, run_id: str) -> dict[str, Any]:
    def fetch() -> dict[str, Any]:
        _, _, answer = call(stack, "GET", f"{stack.policy_path}/runs/{run_id}")
        return dict(answer["data"]["attributes"])

    return _finished(fetch, 90)


def run_now(stack: Stack) -> dict[str, Any]:
    status, _, answer = call(stack, "POST", f"{stack.policy_path}/run")
    assert status == 202
    return wait_run(stack, answer["data"]["id"])


def project_names(stack: Stack) -> set[str]:
    return {p["attributes"]["name"] for p in stack.api.projects(stack.org)}


def tags_of(groups: list[dict[str, Any]]) -> set[str]:
    return {f"{g['repository']}:{t['tag']}" for g in groups for t in g["tags"]}


def test_dry_run_run_push_delete_prune_and_tombstone(stack: Stack) -> None:
    everything = {
        "name": "all of app",
        "import_policy": {"type": "Regex", "policy": {"repo": "^app/"}},
    }

    # a dry run with an old version is refused, naming the parameter
    with pytest.raises(ApiError) as old:
        stack.api.call(
            "POST",
            f"{stack.policy_path}/dry_run",
            query={"version": "2024-05-31"},
            body=body(everything),
        )
    assert old.value.status == 400
    assert old.value.body["errors"][0]["source"] == {"parameter": "version"}

    # 1. dry run: the five images, nothing changed
    status, headers, answer = stack.api.call(
        "POST",
        f"{stack.policy_path}/dry_run",
        query={"version": DRY_RUN_VERSION},
        body=body(everything),
    )
    assert status == 202 and answer["data"]["type"] == "dry_run_job"
    job = wait_dry_run(stack, headers["Location"])
    assert job["status"] == "completed", job
    assert tags_of(job["result"]["images_to_import"]) == set(stack.digests)
    assert job["result"]["images_to_delete"] == []
    assert job["result"]["total_images_processed"] == 5
    assert project_names(stack) == set()
    with pytest.raises(ApiError) as none:
        call(stack, "GET", stack.policy_path)
    assert none.value.status == 404

    # 2. the policy: stored, run at once
    status, headers, answer = call(stack, "POST", stack.policy_path, body=body(everything))
    assert status == 201 and headers["Location"].endswith("/policy")
    policy_id = answer["data"]["id"]
    _, _, runs = call(stack, "GET", f"{stack.policy_path}/runs")
    first = wait_run(stack, runs["data"][0]["id"])
    assert (first["status"], first["trigger"], first["listed"], first["imported"]) == (
        "completed",
        "policy",
        5,
        5,
    ), first
    assert project_names(stack) == set(stack.digests)

    # 3. a new tag, an old image gone; without delete_images nothing is deleted
    push_tag(stack.registry, "app/web", "v4")
    delete_image(stack.registry, "app/api", stack.digests["app/api:1.0"])
    second = run_now(stack)
    assert (second["status"], second["listed"], second["imported"], second["deleted"]) == (
        "completed",
        5,
        1,
        0,
    ), second
    assert "app/web:v4" in project_names(stack)
    assert "app/api:1.0" in project_names(stack)

    # 4. with delete_images, the gone image's project goes
    _, _, patched = call(
        stack, "PATCH", stack.policy_path, body=body({"delete_images": True}, policy_id)
    )
    assert patched["data"]["attributes"]["policy"]["delete_images"] is True
    third = run_now(stack)
    assert (third["status"], third["imported"], third["deleted"]) == ("completed", 0, 1), third
    assert "app/api:1.0" not in project_names(stack)

    # 5. a tag pushed again with new content: the same project, scanned again
    project = next(
        p for p in stack.api.projects(stack.org) if p["attributes"]["name"] == "app/web:v3"
    )
    scans_before = len(stack.api.scans(stack.org, project["id"]))
    push_tag(stack.registry, "app/web", "v3", build=2)
    moved = run_now(stack)
    assert (moved["status"], moved["imported"], moved["deleted"]) == ("completed", 1, 0), moved
    assert len(stack.api.scans(stack.org, project["id"])) == scans_before + 1

    # 6. a project a person deleted stays deleted
    project = next(
        p for p in stack.api.projects(stack.org) if p["attributes"]["name"] == "app/web:v1"
    )
    stack.api.call("DELETE", f"/rest/orgs/{stack.org}/projects/{project['id']}")
    fourth = run_now(stack)
    assert (fourth["status"], fourth["imported"], fourth["skipped"]) == ("completed", 0, 1), fourth
    assert "app/web:v1" not in project_names(stack)

    # the runs list tells the story; deleting the policy stops it
    _, _, runs = call(stack, "GET", f"{stack.policy_path}/runs")
    assert [r["attributes"]["imported"] for r in runs["data"]] == [5, 1, 0, 1, 0]
    call(stack, "DELETE", stack.policy_path)
    with pytest.raises(ApiError) as gone:
        call(stack, "POST", f"{stack.policy_path}/run")
    assert gone.value.status == 404


def test_a_run_without_its_broker_client_fails_naming_the_step(stack: Stack) -> None:
    """Runs after the story above (same module): the customer's broker client goes away; the
    next run fails at its first step and says why, and the projects stay."""
    before = project_names(stack)
    stack.client.stop()
    policy = {"name": "all", "import_policy": {"type": "ImportAll"}}
    call(stack, "POST", stack.policy_path, body=body(policy))
    _, _, runs = call(stack, "GET", f"{stack.policy_path}/runs")
    failed = wait_run(stack, runs["data"][-1]["id"])
    assert failed["status"] == "failed", failed
    assert failed["failed_step"] == "list-repositories"
    assert "broker" in failed["error"]
    assert project_names(stack) == before


def test_a_run_cut_short_by_a_stopped_process_is_carried_out_after_a_restart(
    tmp_path: Path,
) -> None:
    """The control plane stops while a run is ``running`` (the row a dead process leaves:
    claimed, its heartbeat not renewed); started again on the same data, it takes the run
    over once ``SYNC_CLAIM_TIMEOUT`` has passed and carries it out from a new listing."""
    require_registry()
    admin = "adm-" + secrets.token_hex(16)
    env = {
        "CRBROKER_ADMIN_TOKEN": admin,
        "SYNC_POLL_SECONDS": "0.3",
        "SYNC_CLAIM_TIMEOUT": "6",
    }
    stoppers: list[Callable[[], None]] = []
    with running_registry("htpasswd", username=USER, password=PASSWORD) as registry:
        push_tag(registry, "svc/one", "1")
        try:
            server = st.start_crbroker_server(tmp_path, env=env)
            stoppers.append(server.stop)
            # started again below on the same ports: the client and the API client keep them
            relay_port, env["CONTROL_PLANE_PORT"] = server.port, str(server.api_port)
            api = ControlPlaneClient(server.api_url, admin)
            org = api.default_org()
            pair = _connect(api, org, server, tmp_path, registry)
            stoppers += pair.stoppers
            token = pair.token
            stack = Stack(registry, api, org, pair.integration, {}, pair.client)
            policy = {"name": "all", "import_policy": {"type": "ImportAll"}}
            call(stack, "POST", stack.policy_path, body=body(policy))
            _, _, runs = call(stack, "GET", f"{stack.policy_path}/runs")
            assert wait_run(stack, runs["data"][0]["id"])["imported"] == 1
            push_tag(registry, "svc/one", "2")
            server.stop()
            cut_short = _leave_a_running_run(tmp_path, pair.integration)
            server = st.start_crbroker_server(tmp_path, port=relay_port, env=env)
            stoppers.append(server.stop)
            st.wait_for_connection(server.url, token)
            done = wait_run(stack, cut_short)
            assert (done["status"], done["imported"]) == ("completed", 1), done
            assert "svc/one:2" in project_names(stack)
        finally:
            for stop in reversed(stoppers):
                stop()


def _leave_a_running_run(workdir: Path, integration_id: str) -> str:
    """What a process that died during a run leaves in the table."""
    from control_plane.db import open_database
    from control_plane.models import utcnow
    from control_plane.sync.models import SyncPolicyRow, SyncRun

    async def write() -> str:
        url = f"sqlite+aiosqlite:///{(workdir / 'crbroker-data' / 'control-plane.db').resolve()}"
        db = await open_database(url, run_migrations=False)
        try:
            async with db.sessions() as session, session.begin():
                policy = await session.scalar(select(SyncPolicyRow))
                assert policy is not None
                run = SyncRun(
                    org_id=policy.org_id,
                    integration_id=uuid.UUID(integration_id),
                    kind="run",
                    trigger="schedule",
                    status="running",
                    policy=policy.document,
                    policy_created_at=policy.created_at,
                    claimed_by="a-process-that-died",
                    started_at=utcnow() - dt.timedelta(minutes=1),
                    # just now: taken over SYNC_CLAIM_TIMEOUT later, once the broker
                    # client is connected to the restarted server again
                    heartbeat_at=utcnow(),
                    attempts=1,
                )
                session.add(run)
                await session.flush()
                return str(run.id)
        finally:
            await db.close()

    return asyncio.run(write())
