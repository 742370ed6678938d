"""Sync through the API (answers checked against the OpenAPI document) and the scheduler's
claims, on SQLite and PostgreSQL: bad input names its pointer, each run is made and claimed
once across concurrent claimers, a dead process's run is taken over, and the scheduled scan
lane keeps places for ad-hoc scans."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import select, update

from control_plane.db import Database
from control_plane.encryption import SecretBox
from control_plane.errors import InvalidInput
from control_plane.models import Scan, utcnow
from control_plane.queue import services as queue
from control_plane.scans.services import enqueue_scan
from control_plane.sync import services
from control_plane.sync.models import SyncPolicyRow, SyncRun
from control_plane.sync.policy import parse_policy
from tests.control_plane import factories
from tests.control_plane import flow_factories as f
from tests.control_plane.api_client import ApiClient

GA = "2025-09-17"


def body(policy: Any, ident: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "container_registry_import_policy",
        "attributes": {"policy": policy},
    }
    if ident is not None:
        data["id"] = ident
    return {"data": data}


GOOD = {"name": "new images", "import_policy": {"type": "ImportAllNew", "name": "new"}}

BAD = [
    ({"name": "x", "import_policy": {"type": "Newest"}}, "/import_policy/type"),
    (
        {"name": "x", "import_policy": {"type": "Regex", "policy": {"repo": "[a-"}}},
        "/import_policy/policy/repo",
    ),
    (
        {"name": "x", "import_policy": {"type": "Recent", "policy": {"maxAgeDays": 0}}},
        "/import_policy/policy/maxAgeDays",
    ),
    (
        {"name": "x", "import_policy": {"type": "And", "sub_policies": []}},
        "/import_policy/sub_policies",
    ),
    (
        {"name": "x", "schedule_frequency_hours": 1, "import_policy": {"type": "ImportAll"}},
        "/schedule_frequency_hours",
    ),
]


#: three faults at different depths, with what each answer's error says
THREE_FAULTS = {
    "name": "x",
    "schedule_frequency_hours": 1,
    "import_policy": {
        "type": "And",
        "sub_policies": [
            {"type": "Regex", "policy": {"tag": "[a-"}},
            {"type": "Or", "sub_policies": [{"type": "Recent", "policy": {"maxAgeDays": 0}}]},
        ],
    },
}
THREE_ERRORS = [
    ("/schedule_frequency_hours", "Input should be greater than or equal to 2"),
    ("/import_policy/sub_policies/0/policy/tag", "regular expression does not compile: "),
    (
        "/import_policy/sub_policies/1/sub_policies/0/policy/maxAgeDays",
        "Input should be greater than or equal to 1",
    ),
]


def _assert_three_faults(answer: Any) -> None:
    """A 400 whose errors name the three faults of THREE_FAULTS, in document order."""
    assert answer.status == 400, answer.json
    base = "/data/attributes/policy"
    errors = answer.json["errors"]
    assert [e["source"] for e in errors] == [{"pointer": base + p} for p, _ in THREE_ERRORS]
    for error, (_, detail) in zip(errors, THREE_ERRORS, strict=True):
        assert error["status"] == "400" and error["detail"].startswith(detail), error
    assert errors[1]["detail"] != THREE_ERRORS[1][1]  # says where the expression breaks


async def _setup(api: ApiClient, box: SecretBox) -> tuple[str, str]:
    async with api.db.sessions() as session, session.begin():
        acct = await factories.account(session)
        integration = await factories.integration(session, box, acct.org)
    api.token = acct.token
    return str(acct.org.id), str(integration.id)


async def test_policy_operations_and_bad_input_through_the_api(
    api: ApiClient, box: SecretBox
) -> None:
    org, integration = await _setup(api, box)
    path = f"/rest/orgs/{org}/container_import/{integration}/policy"
    for policy, pointer in BAD:
        answer = await api.call("POST", path, body=body(policy), version=GA)
        assert answer.status == 400, answer.json
        assert answer.error()["source"] == {"pointer": "/data/attributes/policy" + pointer}
    unknown = f"/rest/orgs/{org}/container_import/{uuid.uuid4()}/policy"
    assert (await api.call("POST", unknown, body=body(GOOD), version=GA)).status == 404
    assert (await api.call("GET", path, version=GA)).status == 404

    created = await api.call("POST", path, body=body(GOOD), version=GA)
    assert created.status == 201 and created.headers["Location"] == path
    stored = created.json["data"]["attributes"]["policy"]
    assert stored == {**GOOD, "schedule_frequency_hours": 24, "delete_images": False}
    policy_id = created.json["data"]["id"]

    patched = await api.call(
        "PATCH", path, body=body({"schedule_frequency_hours": 1}, policy_id), version=GA
    )
    assert patched.error()["source"] == {
        "pointer": "/data/attributes/policy/schedule_frequency_hours"
    }
    patched = await api.call(
        "PATCH", path, body=body({"delete_images": True}, policy_id), version=GA
    )
    assert patched.status == 200
    assert patched.json["data"]["attributes"]["policy"]["delete_images"] is True
    assert (await api.call("GET", path, version=GA)).json["data"]["attributes"] == patched.json[
        "data"
    ]["attributes"]

    # the new policy's first run waits; "run now" answers that same run
    runs = (await api.call("GET", f"{path}/runs", version=GA)).json["data"]
    assert [(r["attributes"]["status"], r["attributes"]["trigger"]) for r in runs] == [
        ("pending", "policy")
    ]
    now = await api.call("POST", f"{path}/run", version=GA)
    assert now.status == 202 and now.json["data"]["id"] == runs[0]["id"]

    old = await api.call("POST", f"{path}/dry_run", body=body(GOOD), version="2024-05-31")
    assert old.status == 400 and old.error()["source"] == {"parameter": "version"}
    bad = await api.call("POST", f"{path}/dry_run", body=body(BAD[0][0]), version=GA)
    assert bad.error()["source"] == {"pointer": "/data/attributes/policy/import_policy/type"}
    job = await api.call("POST", f"{path}/dry_run", body=body(GOOD), version=GA)
    assert job.status == 202 and job.json["data"]["attributes"]["status"] == "pending"
    read = await api.call("GET", job.headers["Location"], version=GA)
    assert read.json["data"]["id"] == job.json["data"]["id"]
    missing = await api.call("GET", f"{path}/dry_run/{uuid.uuid4()}", version=GA)
    assert missing.status == 404

    assert (await api.call("DELETE", path, version=GA)).status == 204
    assert (await api.call("GET", path, version=GA)).status == 404
    async with api.db.sessions() as session:
        pending = await session.scalars(select(SyncRun).where(SyncRun.kind == "run"))
        assert list(pending) == []  # the schedule stopped: its pending run is gone


async def test_every_fault_of_a_policy_is_answered_at_once(api: ApiClient, box: SecretBox) -> None:
    org, integration = await _setup(api, box)
    path = f"/rest/orgs/{org}/container_import/{integration}/policy"
    _assert_three_faults(await api.call("POST", path, body=body(THREE_FAULTS), version=GA))
    assert (await api.call("GET", path, version=GA)).status == 404  # nothing stored
    _assert_three_faults(
        await api.call("POST", f"{path}/dry_run", body=body(THREE_FAULTS), version=GA)
    )

    created = await api.call("POST", path, body=body(GOOD), version=GA)
    changes = {k: THREE_FAULTS[k] for k in ("schedule_frequency_hours", "import_policy")}
    patch = body(changes, created.json["data"]["id"])
    _assert_three_faults(await api.call("PATCH", path, body=patch, version=GA))
    stored = (await api.call("GET", path, version=GA)).json["data"]["attributes"]["policy"]
    assert stored == created.json["data"]["attributes"]["policy"]  # nothing changed

    # many faults: the first 20, then one error saying how many more there were
    many = {
        "name": "x",
        "import_policy": {
            "type": "Or",
            "sub_policies": [{"type": "Recent", "policy": {"maxAgeDays": 0}}] * 25,
        },
    }
    answer = await api.call("POST", f"{path}/dry_run", body=body(many), version=GA)
    assert answer.status == 400
    errors = answer.json["errors"]
    assert [e["source"]["pointer"] for e in errors[:-1]] == [
        f"/data/attributes/policy/import_policy/sub_policies/{i}/policy/maxAgeDays"
        for i in range(20)
    ]
    assert "source" not in errors[-1] and errors[-1]["status"] == "400"
    assert errors[-1]["detail"] == "5 more faults not listed (only the first 20 are)"


def test_faults_are_listed_in_the_order_given() -> None:
    given = {
        "import_policy": {"policy": {"colour": "red"}, "type": "Regex"},
        "extra": 1,
        "delete_images": "yes",
    }  # and no name
    with pytest.raises(InvalidInput) as caught:
        parse_policy(given, "/p")
    assert [pointer for pointer, _ in caught.value.faults] == [
        "/p/import_policy/policy/colour",
        "/p/extra",
        "/p/delete_images",
        "/p/name",
    ]
    assert caught.value.faults[0] == (caught.value.pointer, caught.value.detail)
    assert [detail for _, detail in caught.value.faults] == [
        "unknown member",
        "unknown member",
        "Input should be a valid boolean",
        "Field required",
    ]
    assert caught.value.more == 0


async def _policy(db: Database, box: SecretBox) -> uuid.UUID:
    async with db.sessions() as session, session.begin():
        acct = await factories.account(session)
        integration = await factories.integration(session, box, acct.org)
        await services.put_policy(session, acct.org.id, integration.id, parse_policy(GOOD))
        return integration.id


async def test_each_due_run_is_made_once_and_claimed_once(db: Database, box: SecretBox) -> None:
    integration_id = await _policy(db, box)
    first = await asyncio.gather(
        *(services.claim_run(db.sessions, f"w{n}", stale_after=60) for n in range(6))
    )
    assert len([r for r in first if r is not None]) == 1
    # the policy's time comes again: six schedulers, one new run, one claim
    async with db.sessions() as session, session.begin():
        await session.execute(
            update(SyncPolicyRow).values(next_run_at=utcnow() - dt.timedelta(minutes=1))
        )
    made = await asyncio.gather(*(services.schedule_due(db.sessions, utcnow()) for _ in range(6)))
    assert sum(made) == 1
    claimed = await asyncio.gather(
        *(services.claim_run(db.sessions, f"w{n}", stale_after=60) for n in range(6))
    )
    assert len([r for r in claimed if r is not None]) == 1
    async with db.sessions() as session:
        runs = list(
            await session.scalars(select(SyncRun).where(SyncRun.integration_id == integration_id))
        )
        policy = await session.scalar(select(SyncPolicyRow))
    assert sorted(r.trigger for r in runs) == ["policy", "schedule"]
    assert all(r.status == "running" and r.attempts == 1 for r in runs)
    assert policy is not None and policy.next_run_at > utcnow() + dt.timedelta(hours=23)


async def test_a_run_whose_process_died_is_taken_over(db: Database, box: SecretBox) -> None:
    await _policy(db, box)
    run_id = await services.claim_run(db.sessions, "dead", stale_after=60)
    assert run_id is not None
    assert await services.claim_run(db.sessions, "alive", stale_after=60) is None
    async with db.sessions() as session, session.begin():
        await session.execute(
            update(SyncRun).values(heartbeat_at=utcnow() - dt.timedelta(seconds=120))
        )
    assert await services.claim_run(db.sessions, "alive", stale_after=60) == run_id
    assert not await services.heartbeat(db.sessions, run_id, "dead")
    assert await services.heartbeat(db.sessions, run_id, "alive")
    # a run whose processes keep dying stops being taken again
    for n in range(services.MAX_ATTEMPTS):
        async with db.sessions() as session, session.begin():
            await session.execute(
                update(SyncRun).values(heartbeat_at=utcnow() - dt.timedelta(seconds=120))
            )
        taken = await services.claim_run(db.sessions, f"again{n}", stale_after=60)
        assert taken == (run_id if n < services.MAX_ATTEMPTS - 2 else None), n
    async with db.sessions() as session:
        run = await session.get(SyncRun, run_id)
    assert run is not None and (run.status, run.failed_step) == ("failed", "restart")


async def test_scheduled_scans_keep_to_their_lane(db: Database) -> None:
    async with db.sessions() as session, session.begin():
        integ = await f.integration(session, max_in_flight=4)
        for n in range(6):
            project = await f.project(session, integ, f"synced{n}", "1")
            await enqueue_scan(session, project, reason="sync", priority=queue.PRIORITY_SCHEDULED)
    first = await queue.claim(db.sessions, "w")
    assert len(first) == queue.scheduled_bound(4) == 2  # two places stay free
    async with db.sessions() as session, session.begin():
        for n in range(3):
            project = await f.project(session, integ, f"asked{n}", "1")
            await enqueue_scan(session, project, reason="retest", priority=queue.PRIORITY_ADHOC)
    second = await queue.claim(db.sessions, "w")
    assert [c.image for c in second] == ["asked0:1", "asked1:1"]
    assert await queue.claim(db.sessions, "w") == []
    async with db.sessions() as session:
        statuses = list(await session.execute(select(Scan.priority, Scan.status)))
    in_flight = [p for p, s in statuses if s in queue.IN_FLIGHT]
    assert sorted(in_flight) == [0, 0, 10, 10]


@pytest.mark.parametrize("kind", ["ImportAll"])
def test_the_sync_tables_are_the_models(kind: str) -> None:
    # the migration tests compare every model with the migrated schema; this checks the
    # sync models are registered on the metadata those tests read
    from control_plane.models import Base

    assert {"sync_policies", "sync_runs", "sync_observed_tags"} <= set(Base.metadata.tables)
