"""``GET /rest/orgs/{org_id}/users/{user_id}`` (Snyk's getUser)."""

from __future__ import annotations

from aiohttp import web

from control_plane.accounts.services import org_user
from control_plane.api.app import principal_of, session_of
from control_plane.api.jsonapi import document, iso
from control_plane.api.query import Query, path_uuid


async def get_user_view(request: web.Request) -> web.Response:
    Query(request, ())
    user, membership = await org_user(
        session_of(request),
        principal_of(request),
        path_uuid(request, "org_id"),
        path_uuid(request, "user_id"),
    )
    resource = {
        "type": "user",
        "id": str(user.id),
        "attributes": {
            "name": user.name,
            "email": user.email,
            "username": user.username,
            "active": user.active,
            "membership": {
                "created_at": iso(membership.created_at if membership else user.created_at),
                "strategy": "direct" if membership else "indirect",
            },
        },
    }
    return document(resource, links={"self": request.path_qs})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/rest/orgs/{org_id}/users/{user_id}", get_user_view)
