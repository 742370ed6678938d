"""Snyk's v1 API, the part catalog clients call: ``GET /v1/orgs``."""

from __future__ import annotations

from aiohttp import web

from control_plane.accounts.services import all_visible_orgs
from control_plane.api.app import principal_of, session_of
from control_plane.api.jsonapi import dumps


async def list_orgs_view(request: web.Request) -> web.Response:
    orgs = await all_visible_orgs(session_of(request), principal_of(request))
    body = {
        "orgs": [
            {
                "id": str(org.id),
                "name": org.name,
                "slug": org.slug,
                "url": f"/org/{org.slug}",
                "group": None,
            }
            for org in orgs
        ]
    }
    return web.Response(text=dumps(body), content_type="application/json")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/orgs", list_orgs_view)
