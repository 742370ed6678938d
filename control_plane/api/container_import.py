"""Container registry sync: ``/rest/orgs/{org_id}/container_import/{integration_id}/policy``.

Snyk's six operations (create or replace, get, update, delete a policy; start a dry run and
read it) in the spec's shapes, and ours in the same style: ``GET .../policy/runs`` (the
integration's sync runs) and ``POST .../policy/run`` (run now). The views parse, call one
function of :mod:`control_plane.sync.services` and render.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from control_plane.api.app import on_commit, org_id_of, session_of
from control_plane.api.body import Body
from control_plane.api.jsonapi import document, iso, page_links
from control_plane.api.query import PAGINATION, Query, path_uuid
from control_plane.errors import InvalidInput
from control_plane.sync import services
from control_plane.sync.models import SyncPolicyRow, SyncRun
from control_plane.sync.policy import parse_policy

WAKE: web.AppKey[Callable[[], None]] = web.AppKey("sync_wake")
POLICY_TYPE = "container_registry_import_policy"
POINTER = "/data/attributes/policy"
BASE = "/rest/orgs/{org_id}/container_import/{integration_id}/policy"

#: (first dated release, first GA release) of the policy and dry-run operations
POLICY_RELEASES = ("2023-10-11", "2025-09-17")
DRY_RUN_RELEASES = ("2024-10-15", "2025-09-17")


def _check_version(request: web.Request, releases: tuple[str, str]) -> None:
    requested = request.query.get("version", "")
    date, _, stability = requested.partition("~")
    first = releases[0] if stability else releases[1]
    if len(date) == 10 and date < first:
        raise InvalidInput(
            f"this operation needs version {releases[1]} or later"
            f" ({releases[0]}~beta or later for the pre-release)",
            parameter="version",
        )


def policy_resource(row: SyncPolicyRow) -> dict[str, Any]:
    return {
        "type": POLICY_TYPE,
        "id": str(row.id),
        "attributes": {"policy": row.document},
        "meta": {
            "created_at": iso(row.created_at),
            "updated_at": iso(row.updated_at),
            "next_run_at": iso(row.next_run_at),
        },
    }


def dry_run_resource(run: SyncRun) -> dict[str, Any]:
    attributes: dict[str, Any] = {"status": run.status, "policy": run.policy}
    if run.started_at is not None:
        attributes["started_at"] = iso(run.started_at)
    if run.finished_at is not None:
        attributes["completed_at"] = iso(run.finished_at)
    if run.error is not None:
        attributes["error_message"] = f"{run.failed_step}: {run.error}"
    if run.result is not None:
        attributes["result"] = run.result
    return {"type": "dry_run_job", "id": str(run.id), "attributes": attributes}


def run_resource(run: SyncRun) -> dict[str, Any]:
    return {
        "type": "container_import_run",
        "id": str(run.id),
        "attributes": {
            "status": run.status,
            "trigger": run.trigger,
            "created_at": iso(run.created_at),
            "started_at": iso(run.started_at),
            "finished_at": iso(run.finished_at),
            "listed": run.listed,
            "imported": run.imported,
            "deleted": run.deleted,
            "skipped": run.skipped,
            "failed": run.failed,
            "failed_step": run.failed_step,
            "error": run.error,
        },
    }


def _wake(request: web.Request) -> None:
    wake = request.config_dict.get(WAKE)
    if wake is not None:
        on_commit(request, wake)


def _base(request: web.Request) -> str:
    return BASE.format(
        org_id=request.match_info["org_id"], integration_id=request.match_info["integration_id"]
    )


async def _policy_body(request: web.Request, **kwargs: Any) -> Any:
    body = await Body.read(request, POLICY_TYPE, **kwargs)
    attributes = body.attributes({"policy"}, required=("policy",))
    return body, attributes["policy"]


async def create_view(request: web.Request) -> web.Response:
    Query(request, ())
    _check_version(request, POLICY_RELEASES)
    org_id = await org_id_of(request)
    integration_id = path_uuid(request, "integration_id")
    _, given = await _policy_body(request)
    policy = parse_policy(given, POINTER)
    row = await services.put_policy(session_of(request), org_id, integration_id, policy)
    _wake(request)
    location = _base(request)
    response = document(policy_resource(row), links={"self": location}, status=201)
    response.headers["Location"] = location
    return response


async def get_view(request: web.Request) -> web.Response:
    Query(request, PAGINATION)
    _check_version(request, POLICY_RELEASES)
    org_id = await org_id_of(request)
    row = await services.get_policy(
        session_of(request), org_id, path_uuid(request, "integration_id")
    )
    return document(policy_resource(row), links={"self": _base(request)})


async def patch_view(request: web.Request) -> web.Response:
    Query(request, ())
    _check_version(request, POLICY_RELEASES)
    org_id = await org_id_of(request)
    integration_id = path_uuid(request, "integration_id")
    current = await services.get_policy(session_of(request), org_id, integration_id)
    _, given = await _policy_body(request, resource_id=current.id)
    if not isinstance(given, dict):
        raise InvalidInput("policy must be an object", pointer=POINTER)
    row = await services.update_policy(
        session_of(request), org_id, integration_id, given, pointer=POINTER
    )
    _wake(request)
    location = _base(request)
    response = document(policy_resource(row), links={"self": location})
    response.headers["Location"] = location
    return response


async def delete_view(request: web.Request) -> web.Response:
    Query(request, ())
    _check_version(request, POLICY_RELEASES)
    org_id = await org_id_of(request)
    await services.delete_policy(session_of(request), org_id, path_uuid(request, "integration_id"))
    return web.Response(status=204)


async def dry_run_view(request: web.Request) -> web.Response:
    Query(request, ())
    _check_version(request, DRY_RUN_RELEASES)
    org_id = await org_id_of(request)
    integration_id = path_uuid(request, "integration_id")
    _, given = await _policy_body(request)
    policy = parse_policy(given, POINTER)
    run = await services.create_dry_run(session_of(request), org_id, integration_id, policy)
    _wake(request)
    location = f"{_base(request)}/dry_run/{run.id}"
    response = document(dry_run_resource(run), links={"self": location}, status=202)
    response.headers["Location"] = location
    response.headers["Content-Location"] = location
    return response


async def dry_run_get_view(request: web.Request) -> web.Response:
    Query(request, ())
    _check_version(request, DRY_RUN_RELEASES)
    org_id = await org_id_of(request)
    run = await services.get_run(
        session_of(request),
        org_id,
        path_uuid(request, "integration_id"),
        path_uuid(request, "job_id"),
        kind="dry_run",
    )
    return document(dry_run_resource(run), links={"self": request.path})


async def runs_view(request: web.Request) -> web.Response:
    query = Query(request, PAGINATION)
    org_id = await org_id_of(request)
    page = await services.list_runs(
        session_of(request), org_id, path_uuid(request, "integration_id"), query.page()
    )
    return document([run_resource(r) for r in page.items], links=page_links(request, page))


async def run_now_view(request: web.Request) -> web.Response:
    Query(request, ())
    org_id = await org_id_of(request)
    run = await services.request_run(
        session_of(request), org_id, path_uuid(request, "integration_id")
    )
    _wake(request)
    location = f"{_base(request)}/runs/{run.id}"
    response = document(run_resource(run), links={"self": location}, status=202)
    response.headers["Location"] = location
    return response


async def run_get_view(request: web.Request) -> web.Response:
    Query(request, ())
    org_id = await org_id_of(request)
    run = await services.get_run(
        session_of(request),
        org_id,
        path_uuid(request, "integration_id"),
        path_uuid(request, "run_id"),
        kind="run",
    )
    return document(run_resource(run), links={"self": request.path})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post(BASE, create_view)
    router.add_get(BASE, get_view)
    router.add_patch(BASE, patch_view)
    router.add_delete(BASE, delete_view)
    router.add_post(f"{BASE}/dry_run", dry_run_view)
    router.add_get(BASE + "/dry_run/{job_id}", dry_run_get_view)
    router.add_get(f"{BASE}/runs", runs_view)
    router.add_get(BASE + "/runs/{run_id}", run_get_view)
    router.add_post(f"{BASE}/run", run_now_view)
