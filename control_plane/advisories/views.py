"""Snyk's ``GET /rest/orgs/{org_id}/issues`` for one project (``scan_item.id`` and
``scan_item.type``), as catalog exporters ask for it: the issues of the project's latest
scan, JSON:API with the control plane's cursor pagination. And ``POST /rest/advisories``:
an admin uploads one advisory file, as ``crbroker-server advisories import`` reads it.

Thin: parse the query, call the domain (:mod:`scan_issues`, :mod:`index_cache`), render.
Register with ``add_routes(app.router)`` beside the control plane's other route modules.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from control_plane.accounts.services import visible_org
from control_plane.advisories.advisory_files import MAX_DOCUMENT_BYTES, read_file
from control_plane.advisories.index_cache import index_cache_for
from control_plane.advisories.scan_issues import ScanIssue, import_and_rematch, list_scan_issues
from control_plane.api.app import principal_of, session_of
from control_plane.api.jsonapi import document, page_links, relationship
from control_plane.api.query import PAGINATION, Query, path_uuid
from control_plane.errors import Forbidden, InvalidInput, TooLarge
from control_plane.pagination import Page
from control_plane.projects.services import get_project

_PARAMETERS = PAGINATION | {
    "scan_item.id",
    "scan_item.type",
    "type",
    "effective_severity_level",
    "status",
    "ignored",
}
_SNYK_LEVELS = ("info", "low", "medium", "high", "critical")


def _level(severity: str) -> str:
    return "info" if severity == "unknown" else severity  # Snyk's scale has no "unknown"


def issue_resource(org_id: Any, project_id: Any, item: ScanIssue) -> dict[str, Any]:
    issue = item.issue
    problems = [{"id": issue.advisory_id, "source": issue.advisory_source, "type": "vulnerability"}]
    problems += [
        {"id": alias, "source": alias.partition("-")[0], "type": "vulnerability"}
        for alias in issue.aliases
    ]
    coordinate: dict[str, Any] = {
        "is_fixable_manually": False,
        "is_fixable_snyk": False,
        "is_fixable_upstream": issue.fixable,
        "is_patchable": False,
        "is_pinnable": False,
        "is_upgradeable": issue.fixable,
        "reachability": "not-applicable",
        "representations": [
            {
                "dependency": {
                    "package_name": issue.package_name,
                    "package_version": issue.package_version,
                }
            }
        ],
    }
    if issue.fixed_version:
        coordinate["remedies"] = [
            {
                "type": "indeterminate",
                "description": f"Upgrade {issue.package_name} to {issue.fixed_version}",
            }
        ]
    return {
        "type": "issue",
        "id": str(item.id),
        "attributes": {
            "key": f"{issue.advisory_id}:{issue.package_name}",
            "title": issue.summary or issue.advisory_id,
            "type": "package_vulnerability",
            "status": "open",
            "ignored": False,
            "effective_severity_level": _level(issue.severity),
            "problems": problems,
            "coordinates": [coordinate],
            # ours: what a container-image issue needs beyond Snyk's shape
            "installed_version": issue.package_version,
            "fixed_version": issue.fixed_version,
            "source_package": issue.matched_name,
            "cvss_score": issue.cvss_score,
            "cvss_vector": issue.cvss_vector,
            "layer": {"index": issue.layer_index, "diff_id": issue.layer_diff_id},
        },
        "relationships": {
            "organization": relationship("org", org_id, f"/orgs/{org_id}"),
            "scan_item": relationship(
                "project", project_id, f"/orgs/{org_id}/projects/{project_id}"
            ),
        },
    }


async def list_issues_view(request: web.Request) -> web.Response:
    query = Query(request, _PARAMETERS)
    session = session_of(request)
    org = await visible_org(session, principal_of(request), path_uuid(request, "org_id"))
    project_id = query.one_uuid("scan_item.id")
    if project_id is None:
        raise InvalidInput(
            "scan_item.id is required: issues are listed per project", parameter="scan_item.id"
        )
    project = await get_project(session, org.id, project_id)
    kind = query.one("scan_item.type")
    if kind is not None and kind not in ("project", project.type):
        raise InvalidInput(
            f"scan_item.type must be project (or the project's type); got {kind!r}",
            parameter="scan_item.type",
        )
    levels = query.choices("effective_severity_level", _SNYK_LEVELS)
    page_request = query.page()
    # every issue here is an open, not ignored package vulnerability
    kinds = query.choices("type", ("package_vulnerability", "license", "code", "config", "custom"))
    statuses = query.choices("status", ("open", "resolved"))
    wanted = (
        (not kinds or "package_vulnerability" in kinds)
        and (not statuses or "open" in statuses)
        and query.flag("ignored") is not True
    )
    if project.latest_scan_id is None or not wanted:
        page: Page[ScanIssue] = Page([], has_next=False, has_prev=False)
    else:
        severities = {"unknown" if level == "info" else level for level in levels}
        page = await list_scan_issues(
            session,
            await index_cache_for(session).get(session),
            project.latest_scan_id,
            page_request,
            severities=severities,
        )
    data = [issue_resource(org.id, project.id, item) for item in page.items]
    return document(data, links=page_links(request, page))


#: skipped records listed in the answer; all are counted
SHOWN_SKIPS = 100
#: an upload is named so in what is skipped
UPLOAD = "upload"


async def _receive(request: web.Request, into: Path) -> None:
    """The request body into a file, streamed (the Debian tracker's JSON is ~100 MB; an
    aiohttp body read is capped far below)."""
    size = 0
    with into.open("wb") as out:
        async for chunk in request.content.iter_chunked(1 << 20):
            size += len(chunk)
            if size > MAX_DOCUMENT_BYTES:
                raise TooLarge(f"an advisory file is taken up to {MAX_DOCUMENT_BYTES} bytes")
            out.write(chunk)
    if size == 0:
        raise InvalidInput(
            "the body is empty: send an OSV JSON or all.zip, Alpine secdb or Debian tracker file"
        )


async def import_advisories_view(request: web.Request) -> web.Response:
    Query(request, ())
    if not principal_of(request).is_admin:
        raise Forbidden("only an admin token may import advisories (they apply to every org)")
    with tempfile.TemporaryDirectory(prefix="crbroker-advisories-") as directory:
        upload = Path(directory) / UPLOAD
        await _receive(request, upload)
        outcome = await asyncio.to_thread(read_file, upload, UPLOAD)  # CPU work: off the loop
    if not outcome.advisories and outcome.skipped:
        raise InvalidInput(f"nothing in the body could be read: {outcome.skipped[0]}")
    report, rematched = await import_and_rematch(session_of(request), outcome)
    attributes: dict[str, Any] = {
        "new": report.new,
        "updated": report.updated,
        "withdrawn": report.withdrawn,
        "unchanged": report.unchanged,
        "skipped": len(report.skipped),
        "skipped_records": [
            {"record": skip.where, "field": skip.field, "reason": skip.reason}
            for skip in report.skipped[:SHOWN_SKIPS]
        ],
        "rematched": None if rematched is None else rematched._asdict(),
    }
    return document({"type": "advisory_import", "id": str(uuid.uuid4()), "attributes": attributes})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/rest/orgs/{org_id}/issues", list_issues_view)
    router.add_post("/rest/advisories", import_advisories_view)
