"""Targets: ``/rest/orgs/{org_id}/targets[/{target_id}]``.

``attributes.tags`` (ECR repository tags in AWS's list-of-``{Key, Value}`` shape) is our
extension: Snyk's target has no tag field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from control_plane.api.app import org_id_of, session_of
from control_plane.api.jsonapi import document, iso, page_links
from control_plane.api.query import PAGINATION, Query, path_uuid
from control_plane.errors import InvalidInput
from control_plane.models import Integration, Target
from control_plane.targets.services import (
    TargetFilter,
    delete_target,
    get_target,
    list_targets,
    target_integrations,
)


def target_resource(target: Target, integration: Integration | None) -> dict[str, Any]:
    integration_rel: dict[str, Any] = {"data": None}
    if integration is not None:
        integration_rel = {
            "data": {
                "type": "integration",
                "id": str(integration.id),
                "attributes": {"integration_type": integration.integration_type},
            }
        }
    return {
        "type": "target",
        "id": str(target.id),
        "attributes": {
            "display_name": target.display_name,
            "url": target.url,
            "is_private": target.is_private,
            "created_at": iso(target.created_at),
            "tags": list(target.tags),
        },
        "relationships": {
            "integration": integration_rel,
            "organization": {"data": {"type": "organization", "id": str(target.org_id)}},
        },
    }


def _created_gte(query: Query) -> dt.datetime | None:
    raw = query.one("created_gte")
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            "created_gte must be an RFC 3339 date-time", parameter="created_gte"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def list_targets_view(request: web.Request) -> web.Response:
    query = Query(
        request,
        PAGINATION
        | {"display_name", "url", "exclude_empty", "is_private", "created_gte", "source_types"},
    )
    session = session_of(request)
    org_id = await org_id_of(request)
    filters = TargetFilter(
        display_name=query.one("display_name"),
        url=query.one("url"),
        exclude_empty=bool(query.flag("exclude_empty")),
        is_private=query.flag("is_private"),
        created_gte=_created_gte(query),
        integration_types=query.many("source_types"),
    )
    page = await list_targets(session, org_id, filters, query.page())
    integrations = await target_integrations(session, list(page.items))
    data = [target_resource(t, integrations.get(t.integration_id)) for t in page.items]  # type: ignore[arg-type]
    return document(data, links=page_links(request, page))


async def _org_target(request: web.Request) -> Target:
    session = session_of(request)
    org_id = await org_id_of(request)
    return await get_target(session, org_id, path_uuid(request, "target_id"))


async def get_target_view(request: web.Request) -> web.Response:
    Query(request, ())
    target = await _org_target(request)
    integrations = await target_integrations(session_of(request), [target])
    resource = target_resource(target, integrations.get(target.integration_id))  # type: ignore[arg-type]
    return document(resource, links={"self": request.path_qs})


async def delete_target_view(request: web.Request) -> web.Response:
    Query(request, ())
    target = await _org_target(request)
    await delete_target(session_of(request), target.org_id, target.id)
    return web.Response(status=204)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/rest/orgs/{org_id}/targets", list_targets_view)
    router.add_get("/rest/orgs/{org_id}/targets/{target_id}", get_target_view)
    router.add_delete("/rest/orgs/{org_id}/targets/{target_id}", delete_target_view)
