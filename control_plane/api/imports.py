"""Import, re-test and scan history over HTTP: Snyk's v1 import call and its REST forms.

v1 (Snyk's call for container registry integrations)::

    POST /v1/org/{org_id}/integrations/{integration_id}/import   {"target": {"name": "repo:tag"}}
      -> 201, Location: <origin>/v1/org/{org_id}/integrations/{integration_id}/import/{job_id}
    GET  /v1/org/{org_id}/integrations/{integration_id}/import/{job_id}
      -> {"id", "status": pending|complete|failed, "created", "logs": [{name, status, projects}]}

REST (JSON:API)::

    POST /rest/orgs/{org_id}/integrations/{integration_id}/import
         {"data": {"type": "import", "attributes": {"targets": [{"name": "repo:tag"}, ...]}}}
      -> 202 import_job, Location: /rest/orgs/{org_id}/import_jobs/{job_id}?version=...
    GET  /rest/orgs/{org_id}/import_jobs/{job_id}
    POST /rest/orgs/{org_id}/projects/{project_id}/scans          (re-test) -> 202 scan
    GET  /rest/orgs/{org_id}/projects/{project_id}/scans          (history, oldest first)

The API middleware has already checked the version, opened the transaction and found who is
asking; each view parses, makes one domain call and renders. New scans wake this process's
dispatcher, so they go out at once rather than at the next poll.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from control_plane.accounts.services import visible_org
from control_plane.api.app import on_commit, principal_of, session_of
from control_plane.api.body import Body, parse_json
from control_plane.api.jsonapi import document, iso, page_links
from control_plane.api.query import PAGINATION, Query, path_uuid
from control_plane.errors import InvalidInput, NotFound
from control_plane.imports import services as imports
from control_plane.models import ImportJob, Scan
from control_plane.projects.services import get_project
from control_plane.queue.services import FINISHED
from control_plane.scans.services import scan_history

WAKE: web.AppKey[Callable[[], None]] = web.AppKey("dispatcher_wake")


async def _org(request: web.Request) -> Any:
    org_id = path_uuid(request, "org_id")
    await visible_org(session_of(request), principal_of(request), org_id)
    return org_id


# --------------------------------------------------------------------------- v1


def _v1_log(request: web.Request, job: ImportJob, entry: imports.JobEntry) -> dict[str, Any]:
    scan, project = entry.scan, entry.project
    if scan.status in FINISHED:
        status = "complete" if scan.status == "succeeded" else "failed"
    else:
        status = "pending"
    return {
        "name": project.name,
        "created": iso(scan.requested_at),
        "status": status,
        "projects": [
            {
                "targetFile": "",
                "success": scan.status == "succeeded",
                "projectId": str(project.id),
                "projectUrl": f"{request.url.origin()}/rest/orgs/{job.org_id}/projects/{project.id}",
            }
        ],
    }


async def v1_import_view(request: web.Request) -> web.Response:
    org_id = await _org(request)
    integration_id = path_uuid(request, "integration_id")
    body = parse_json(await request.read())
    target = body.get("target") if isinstance(body, dict) else None
    if not isinstance(target, dict):
        raise InvalidInput(
            'the body must be {"target": {"name": "repository:tag"}}', pointer="/target"
        )
    image = imports.parse_image_name(target.get("name"), "/target/name")
    job = await imports.import_images(
        session_of(request),
        org_id,
        integration_id,
        [image],
        user_id=principal_of(request).user_id,
    )
    _wake_after_commit(request)
    location = (
        f"{request.url.origin()}/v1/org/{org_id}/integrations/{integration_id}/import/{job.id}"
    )
    return web.json_response({}, status=201, headers={"Location": location})


async def v1_import_job_view(request: web.Request) -> web.Response:
    org_id = await _org(request)
    integration_id = path_uuid(request, "integration_id")
    job_id = path_uuid(request, "job_id")
    job, entries = await imports.get_import_job(session_of(request), org_id, job_id)
    if job.integration_id != integration_id:
        raise NotFound("import job", job_id)
    return web.json_response(
        {
            "id": str(job.id),
            "status": job.status,
            "created": iso(job.created_at),
            "logs": [_v1_log(request, job, e) for e in entries],
        }
    )


# --------------------------------------------------------------------------- REST


def scan_resource(scan: Scan) -> dict[str, Any]:
    return {
        "type": "scan",
        "id": str(scan.id),
        "attributes": {
            "status": scan.status,
            "reason": scan.reason,
            "requested_at": iso(scan.requested_at),
            "started_at": iso(scan.started_at),
            "finished_at": iso(scan.finished_at),
            "error": scan.error,
            "failed_step": scan.failed_step,
            "image_digest": scan.image_digest,
            "platform": scan.platform,
            "package_type": scan.package_type,
            "package_count": scan.package_count,
            "duration_ms": scan.duration_ms,
            "attempts": scan.attempts,
        },
        "relationships": {
            "project": {"data": {"type": "project", "id": str(scan.project_id)}},
            "requested_by": {
                "data": {"type": "user", "id": str(scan.requested_by)}
                if scan.requested_by
                else None
            },
        },
    }


def _job_resource(job: ImportJob, entries: list[imports.JobEntry]) -> dict[str, Any]:
    return {
        "type": "import_job",
        "id": str(job.id),
        "attributes": {
            "status": job.status,
            "created_at": iso(job.created_at),
            "images": [
                {
                    "name": e.project.name,
                    "project_id": str(e.project.id),
                    "scan_id": str(e.scan.id),
                    "scan_status": e.scan.status,
                }
                for e in entries
            ],
        },
        "relationships": {
            "integration": {"data": {"type": "integration", "id": str(job.integration_id)}},
            "organization": {"data": {"type": "org", "id": str(job.org_id)}},
        },
    }


async def rest_import_view(request: web.Request) -> web.Response:
    query = Query(request, ())
    org_id = await _org(request)
    integration_id = path_uuid(request, "integration_id")
    body = await Body.read(request, "import")
    attributes = body.attributes({"targets"}, required={"targets"})
    targets = Body.list_of_objects(attributes["targets"], "targets", {"name"})
    images = [
        imports.parse_image_name(t.get("name"), f"/data/attributes/targets/{n}/name")
        for n, t in enumerate(targets)
    ]
    session = session_of(request)
    job = await imports.import_images(
        session, org_id, integration_id, images, user_id=principal_of(request).user_id
    )
    job, entries = await imports.get_import_job(session, org_id, job.id)
    _wake_after_commit(request)
    location = f"/rest/orgs/{org_id}/import_jobs/{job.id}?version={query.one('version')}"
    response = document(_job_resource(job, entries), links={"self": location}, status=202)
    response.headers["Location"] = location
    return response


async def rest_import_job_view(request: web.Request) -> web.Response:
    Query(request, ())
    org_id = await _org(request)
    job, entries = await imports.get_import_job(
        session_of(request), org_id, path_uuid(request, "job_id")
    )
    return document(_job_resource(job, entries), links={"self": request.path_qs})


async def retest_view(request: web.Request) -> web.Response:
    Query(request, ())
    org_id = await _org(request)
    scan = await imports.retest(
        session_of(request),
        org_id,
        path_uuid(request, "project_id"),
        user_id=principal_of(request).user_id,
    )
    _wake_after_commit(request)
    return document(scan_resource(scan), status=202)


async def history_view(request: web.Request) -> web.Response:
    query = Query(request, PAGINATION)
    org_id = await _org(request)
    project_id = path_uuid(request, "project_id")
    session = session_of(request)
    await get_project(session, org_id, project_id)
    page = await scan_history(session, org_id, project_id, query.page())
    return document([scan_resource(s) for s in page.items], links=page_links(request, page))


def _wake_after_commit(request: web.Request) -> None:
    """The dispatcher looks for the new scans once they are committed."""
    wake = request.config_dict.get(WAKE)
    if wake is not None:
        on_commit(request, wake)


def add_routes(router: web.UrlDispatcher) -> None:
    v1 = "/v1/org/{org_id}/integrations/{integration_id}/import"
    router.add_post(v1, v1_import_view)
    router.add_get(v1 + "/{job_id}", v1_import_job_view)
    rest = "/rest/orgs/{org_id}"
    router.add_post(rest + "/integrations/{integration_id}/import", rest_import_view)
    router.add_get(rest + "/import_jobs/{job_id}", rest_import_job_view)
    router.add_post(rest + "/projects/{project_id}/scans", retest_view)
    router.add_get(rest + "/projects/{project_id}/scans", history_view)
