"""Projects: ``/rest/orgs/{org_id}/projects[/{project_id}[/sbom]]``."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

from aiohttp import web

from control_plane.advisories.scan_issues import StoredCounts, issue_counts
from control_plane.api.app import org_id_of, session_of
from control_plane.api.body import Body
from control_plane.api.jsonapi import document, iso, page_links, relationship
from control_plane.api.query import PAGINATION, Query, path_uuid
from control_plane.errors import InvalidInput
from control_plane.models import Project, Target
from control_plane.projects.services import (
    BUSINESS_CRITICALITY,
    ENVIRONMENT,
    LIFECYCLE,
    ProjectFilter,
    ProjectUpdate,
    TargetSummary,
    check_tags,
    delete_project,
    get_project,
    list_projects,
    update_project,
)
from control_plane.scans.services import SBOM_MEDIA_TYPES, latest_sbom

_META = ("meta.latest_issue_counts", "meta.latest_dependency_total")
_ONE = frozenset({"expand", *_META})
_LIST = (
    PAGINATION
    | _ONE
    | {
        "origins",
        "types",
        "names",
        "names_start_with",
        "ids",
        "target_id",
        "target_reference",
        "tags",
        "business_criticality",
        "environment",
        "lifecycle",
        "importing_user_public_id",
    }
)


def target_relationship(
    org_id: uuid.UUID, project: Project | SimpleNamespace, expand: bool
) -> dict[str, Any]:
    rel = relationship("target", project.target_id, f"/orgs/{org_id}/targets/{project.target_id}")
    if expand:
        target: Target | TargetSummary = project.target
        rel["data"]["attributes"] = {
            "display_name": target.display_name,
            "url": target.url,
            "created_at": iso(target.created_at),
        }
        rel["data"]["meta"] = {"integration_data": {}}
    return rel


def project_resource(
    project: Project | SimpleNamespace,
    *,
    expand_target: bool,
    issue_counts: bool,
    dependency_total: bool,
    counts: StoredCounts | None = None,
) -> dict[str, Any]:
    org = project.org_id
    resource: dict[str, Any] = {
        "type": "project",
        "id": str(project.id),
        "attributes": {
            "name": project.name,
            # None until the first scan lands: nothing is known of the image's packages yet
            "type": project.type,
            "target_file": "",
            "target_reference": project.target_reference,
            "origin": project.origin,
            "created": iso(project.created_at),
            "status": project.status,
            "read_only": False,
            "tags": [{"key": t.key, "value": t.value} for t in project.tags],
            "business_criticality": list(project.business_criticality),
            "environment": list(project.environment),
            "lifecycle": list(project.lifecycle),
            "settings": {
                "recurring_tests": {"frequency": project.test_frequency},
                "pull_requests": {"is_enabled": False},
            },
            "image_digest": project.image_digest,
            "platform": project.platform,
        },
        "relationships": {
            "organization": relationship("org", org, f"/orgs/{org}"),
            "target": target_relationship(org, project, expand_target),
            "importer": relationship(
                "user", project.importer_id, f"/orgs/{org}/users/{project.importer_id}"
            ),
        },
    }
    if project.owner_id is not None:  # optional in Snyk's shape; clients read it unguarded
        resource["relationships"]["owner"] = relationship(
            "user", project.owner_id, f"/orgs/{org}/users/{project.owner_id}"
        )
    meta: dict[str, Any] = {"cli_monitored_at": None}
    if issue_counts:
        # the latest scan's counts; zeros, never updated, until it is matched
        meta["latest_issue_counts"] = {
            "critical": counts.counts.critical if counts else 0,
            "high": counts.counts.high if counts else 0,
            "medium": counts.counts.medium if counts else 0,
            "low": counts.counts.low if counts else 0,
            "updated_at": iso(counts.matched_at) if counts else None,
        }
    if dependency_total:
        meta["latest_dependency_total"] = {
            "total": project.dependency_total,
            "updated_at": iso(project.dependency_total_updated_at),
        }
    resource["meta"] = meta
    return resource


def _render_options(query: Query) -> dict[str, bool]:
    expand = query.choices("expand", ("target",))
    return {
        "expand_target": "target" in expand,
        "issue_counts": bool(query.flag("meta.latest_issue_counts")),
        "dependency_total": bool(query.flag("meta.latest_dependency_total")),
    }


def _tag_pairs(values: tuple[str, ...], parameter: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        key, sep, tag_value = value.partition(":")
        if not sep or not key or not tag_value:
            raise InvalidInput(
                f"{parameter} entries must be key:value; got {value!r}", parameter=parameter
            )
        pairs.append((key, tag_value))
    return tuple(pairs)


def _filters(query: Query) -> ProjectFilter:
    return ProjectFilter(
        origins=query.many("origins"),
        types=query.many("types"),
        names=query.many("names"),
        names_start_with=query.many("names_start_with"),
        ids=query.uuids("ids"),
        target_ids=query.uuids("target_id"),
        target_reference=query.one("target_reference"),
        tags=_tag_pairs(query.many("tags"), "tags"),
        business_criticality=query.choices("business_criticality", BUSINESS_CRITICALITY),
        environment=query.choices("environment", ENVIRONMENT),
        lifecycle=query.choices("lifecycle", LIFECYCLE),
        importing_user_ids=query.uuids("importing_user_public_id"),
    )


async def list_projects_view(request: web.Request) -> web.Response:
    query = Query(request, _LIST)
    session = session_of(request)
    org_id = await org_id_of(request)
    options = _render_options(query)
    page = await list_projects(
        session, org_id, _filters(query), query.page(), with_target=options["expand_target"]
    )
    counts = {}
    if options["issue_counts"]:
        latest = [p.latest_scan_id for p in page.items if p.latest_scan_id is not None]
        counts = await issue_counts(session, latest)
    data = [project_resource(p, **options, counts=counts.get(p.latest_scan_id)) for p in page.items]
    return document(data, links=page_links(request, page))


async def _org_project(request: web.Request, *, with_target: bool = False) -> Project:
    session = session_of(request)
    org_id = await org_id_of(request)
    return await get_project(
        session, org_id, path_uuid(request, "project_id"), with_target=with_target
    )


async def get_project_view(request: web.Request) -> web.Response:
    options = _render_options(Query(request, _ONE))
    project = await _org_project(request, with_target=options["expand_target"])
    counts = None
    if options["issue_counts"] and project.latest_scan_id is not None:
        found = await issue_counts(session_of(request), [project.latest_scan_id])
        counts = found.get(project.latest_scan_id)
    resource = project_resource(project, **options, counts=counts)
    return document(resource, links={"self": request.path_qs})


def _update(body: Body) -> ProjectUpdate:
    attributes = body.attributes(
        {"tags", "business_criticality", "environment", "lifecycle", "test_frequency"}
    )
    tags = None
    if "tags" in attributes:
        tags = [
            (item["key"], item["value"])
            for item in body.list_of_objects(attributes["tags"], "tags", {"key", "value"})
        ]
        check_tags(tags)
    owner, clear_owner = body.to_one("owner", "user")
    return ProjectUpdate(
        tags=tags,
        business_criticality=body.strings(attributes, "business_criticality"),
        environment=body.strings(attributes, "environment"),
        lifecycle=body.strings(attributes, "lifecycle"),
        test_frequency=body.string(attributes, "test_frequency"),
        owner_id=owner,
        clear_owner=clear_owner,
    )


async def patch_project_view(request: web.Request) -> web.Response:
    Query(request, ())
    project = await _org_project(request)
    body = await Body.read(request, "project", resource_id=project.id)
    updated = await update_project(session_of(request), project.org_id, project.id, _update(body))
    resource = project_resource(
        updated, expand_target=True, issue_counts=False, dependency_total=False
    )
    return document(resource, links={"self": request.path})


async def delete_project_view(request: web.Request) -> web.Response:
    Query(request, ())
    project = await _org_project(request)
    await delete_project(session_of(request), project.org_id, project.id)
    return web.Response(status=204)


async def sbom_view(request: web.Request) -> web.Response:
    query = Query(request, {"format"})
    fmt = query.one("format") or "cyclonedx"
    # Snyk names formats with a version (cyclonedx1.6+json, spdx2.3+json); the family decides
    family = next((name for name in SBOM_MEDIA_TYPES if fmt.startswith(name)), fmt)
    project = await _org_project(request)
    sbom = await latest_sbom(session_of(request), project, family)
    return web.Response(
        body=sbom.content,
        content_type=sbom.media_type,
        headers={"snyk-scan-id": str(sbom.scan_id)},
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/rest/orgs/{org_id}/projects", list_projects_view)
    router.add_get("/rest/orgs/{org_id}/projects/{project_id}", get_project_view)
    router.add_patch("/rest/orgs/{org_id}/projects/{project_id}", patch_project_view)
    router.add_delete("/rest/orgs/{org_id}/projects/{project_id}", delete_project_view)
    router.add_get("/rest/orgs/{org_id}/projects/{project_id}/sbom", sbom_view)
