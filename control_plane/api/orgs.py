"""``GET /rest/orgs`` and ``GET /rest/orgs/{org_id}``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from control_plane.accounts.services import list_orgs, visible_org
from control_plane.api.app import principal_of, session_of
from control_plane.api.jsonapi import document, iso, page_links
from control_plane.api.query import PAGINATION, Query, path_uuid
from control_plane.models import Org


def org_resource(org: Org) -> dict[str, Any]:
    return {
        "type": "org",
        "id": str(org.id),
        "attributes": {
            "name": org.name,
            "slug": org.slug,
            "group_id": str(org.group_id) if org.group_id else None,
            "is_personal": org.is_personal,
            "access_requests_enabled": False,
            "created_at": iso(org.created_at),
            "updated_at": iso(org.updated_at),
        },
    }


async def list_orgs_view(request: web.Request) -> web.Response:
    query = Query(request, PAGINATION | {"slug", "name"})
    page = await list_orgs(
        session_of(request),
        principal_of(request),
        query.page(),
        slug=query.one("slug"),
        name=query.one("name"),
    )
    return document([org_resource(o) for o in page.items], links=page_links(request, page))


async def get_org_view(request: web.Request) -> web.Response:
    Query(request, ())
    org = await visible_org(
        session_of(request), principal_of(request), path_uuid(request, "org_id")
    )
    return document(org_resource(org), links={"self": request.path_qs})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/rest/orgs", list_orgs_view)
    router.add_get("/rest/orgs/{org_id}", get_org_view)
