"""An inactive registry is never listed or synced (product document 003), through the API
(answers checked against the OpenAPI document) and the scheduler's side, on SQLite and
PostgreSQL: its policy is stored and edited, but no run or dry run is made for it, and a run
made before it was deactivated fails naming why instead of listing it."""

from __future__ import annotations

from sqlalchemy import select, update

from control_plane.encryption import SecretBox
from control_plane.models import Integration
from control_plane.sync import services
from control_plane.sync.listing import ListedTag
from control_plane.sync.models import SyncRun
from tests.control_plane.api_client import ApiClient
from tests.control_plane.sync.test_sync_service import GA, GOOD, _setup, body


async def _runs(api: ApiClient) -> list[SyncRun]:
    async with api.db.sessions() as session:
        return list(await session.scalars(select(SyncRun)))


async def test_an_inactive_registry_keeps_its_policy_but_is_never_listed(
    api: ApiClient, box: SecretBox
) -> None:
    org, integration = await _setup(api, box)
    path = f"/rest/orgs/{org}/container_import/{integration}/policy"
    patch = {"data": {"type": "integration", "id": integration, "attributes": {"is_active": False}}}
    assert (
        await api.call("PATCH", f"/rest/orgs/{org}/integrations/{integration}", body=patch)
    ).status == 200

    created = await api.call("POST", path, body=body(GOOD), version=GA)
    assert created.status == 201
    assert await _runs(api) == []  # stored, not run
    policy_id = created.json["data"]["id"]
    changed = await api.call(
        "PATCH", path, body=body({"delete_images": True}, policy_id), version=GA
    )
    assert changed.json["data"]["attributes"]["policy"]["delete_images"] is True

    for call, given in ((f"{path}/dry_run", body(GOOD)), (f"{path}/run", None)):
        refused = await api.call("POST", call, body=given, version=GA)
        assert refused.status == 400, refused.json
        assert refused.error()["detail"] == (
            "registry docker-hub registry is inactive: it is not listed or synced"
        )
    assert await _runs(api) == []


async def test_a_run_made_before_the_registry_was_deactivated_fails_without_listing(
    api: ApiClient, box: SecretBox
) -> None:
    org, integration = await _setup(api, box)
    path = f"/rest/orgs/{org}/container_import/{integration}/policy"
    assert (await api.call("POST", path, body=body(GOOD), version=GA)).status == 201
    [run] = await _runs(api)
    async with api.db.sessions() as session, session.begin():
        await session.execute(update(Integration).values(is_active=False))
    listed: list[str] = []

    async def list_registry(integration: Integration) -> tuple[list[str], list[ListedTag]]:
        listed.append(integration.profile_name)
        return [], []

    done = await services.execute_run(api.db.sessions, run.id, list_registry)
    assert (done.status, done.failed_step) == ("failed", "list-repositories")
    assert done.error == "registry docker-hub registry is inactive: it is not listed"
    assert listed == []
