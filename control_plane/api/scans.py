"""Scan history (our extension; Snyk has no such resource):
``GET /rest/orgs/{org_id}/projects/{project_id}/scans`` and ``GET /rest/orgs/{org_id}/scans/{scan_id}``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from control_plane.accounts.services import visible_org
from control_plane.api.app import principal_of, session_of
from control_plane.api.jsonapi import document, iso, page_links, relationship
from control_plane.api.query import PAGINATION, Query, path_uuid
from control_plane.models import Scan
from control_plane.projects.services import get_project
from control_plane.scans.services import get_scan, scan_history


def scan_resource(scan: Scan) -> dict[str, Any]:
    org = scan.org_id
    return {
        "type": "scan",
        "id": str(scan.id),
        "attributes": {
            "status": scan.status,
            "reason": scan.reason,
            "requested_at": iso(scan.requested_at),
            "started_at": iso(scan.started_at),
            "finished_at": iso(scan.finished_at),
            "attempts": scan.attempts,
            "error": scan.error,
            "failed_step": scan.failed_step,
            "image_digest": scan.image_digest,
            "platform": scan.platform,
            "package_type": scan.package_type,
            "package_count": scan.package_count,
            "duration_ms": scan.duration_ms,
        },
        "relationships": {
            "project": relationship(
                "project", scan.project_id, f"/orgs/{org}/projects/{scan.project_id}"
            ),
            "requested_by": relationship(
                "user", scan.requested_by, f"/orgs/{org}/users/{scan.requested_by}"
            ),
        },
    }


async def project_scans_view(request: web.Request) -> web.Response:
    query = Query(request, PAGINATION)
    session = session_of(request)
    org = await visible_org(session, principal_of(request), path_uuid(request, "org_id"))
    project = await get_project(session, org.id, path_uuid(request, "project_id"))
    page = await scan_history(session, org.id, project.id, query.page())
    return document([scan_resource(s) for s in page.items], links=page_links(request, page))


async def scan_view(request: web.Request) -> web.Response:
    Query(request, ())
    session = session_of(request)
    org = await visible_org(session, principal_of(request), path_uuid(request, "org_id"))
    scan = await get_scan(session, org.id, path_uuid(request, "scan_id"))
    return document(scan_resource(scan), links={"self": request.path_qs})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/rest/orgs/{org_id}/projects/{project_id}/scans", project_scans_view)
    router.add_get("/rest/orgs/{org_id}/scans/{scan_id}", scan_view)
