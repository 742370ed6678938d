"""Snyk's ``GET /rest/orgs/{org_id}/issues`` for one project (``scan_item.id`` and
``scan_item.type``), as catalog exporters ask for it: the issues of the project's latest
scan, JSON:API with the control plane's cursor pagination.

Thin: parse the query, call the domain (:mod:`scan_issues`, :mod:`index_cache`), render.
Register with ``add_routes(app.router)`` beside the control plane's other route modules.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from control_plane.accounts.services import visible_org
from control_plane.advisories.index_cache import index_cache_for
from control_plane.advisories.scan_issues import ScanIssue, list_scan_issues
from control_plane.api.app import principal_of, session_of
from control_plane.api.jsonapi import document, page_links, relationship
from control_plane.api.query import PAGINATION, Query, path_uuid
from control_plane.errors import InvalidInput
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


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/rest/orgs/{org_id}/issues", list_issues_view)
