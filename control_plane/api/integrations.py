"""Registry integrations: ``/rest/orgs/{org_id}/integrations[/{integration_id}]``.

Create with ``attributes: {integration_type, profile_name, has_broker, credentials?,
broker_token?, registry_base?, is_active?, max_in_flight?}``. The broker token of a brokered
integration is in the creation answer (``attributes.broker_token``) and nowhere after;
credentials are never rendered.

Two operations ask the integration's agent (through the broker client for a brokered one),
the console's "Update images list" and "Refresh status" buttons: ``POST
.../{integration_id}/list_images`` (a project, not scanned, for each image not known yet; an
inactive integration is refused) and ``POST .../{integration_id}/refresh_status`` (check the
connection, store the outcome). Both answer when done (200); the console calls the same
functions of :mod:`control_plane.integrations.listing`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.api.app import context, org_id_of, session_of
from control_plane.api.body import Body
from control_plane.api.jsonapi import document, iso, page_links
from control_plane.api.query import PAGINATION, Query, path_uuid
from control_plane.integrations import listing
from control_plane.integrations.registry_agent import AgentUnavailable, RegistryAgent
from control_plane.integrations.services import (
    IntegrationInput,
    create_integration,
    delete_integration,
    get_integration,
    list_integrations,
    update_integration,
)
from control_plane.models import Integration

T = TypeVar("T")
AgentAction = Callable[[AsyncSession, RegistryAgent, uuid.UUID, uuid.UUID], Awaitable[T]]

_ATTRIBUTES = {
    "integration_type",
    "profile_name",
    "has_broker",
    "is_active",
    "registry_base",
    "credentials",
    "broker_token",
    "max_in_flight",
}


def integration_resource(integration: Integration) -> dict[str, Any]:
    return {
        "type": "integration",
        "id": str(integration.id),
        "attributes": {
            "integration_type": integration.integration_type,
            "profile_name": integration.profile_name,
            "has_broker": integration.has_broker,
            "is_active": integration.is_active,
            "registry_base": integration.registry_base,
            "max_in_flight": integration.max_in_flight,
            "created_at": iso(integration.created_at),
            "updated_at": iso(integration.updated_at),
        },
        "relationships": {"org": {"data": {"type": "org", "id": str(integration.org_id)}}},
    }


def _input(body: Body, *, required: tuple[str, ...] = ()) -> IntegrationInput:
    attributes = body.attributes(_ATTRIBUTES, required=required)
    return IntegrationInput(
        integration_type=body.string(attributes, "integration_type"),
        profile_name=body.string(attributes, "profile_name"),
        has_broker=body.boolean(attributes, "has_broker"),
        is_active=body.boolean(attributes, "is_active"),
        registry_base=body.string(attributes, "registry_base"),
        credentials=body.obj(attributes, "credentials"),
        broker_token=body.string(attributes, "broker_token"),
        max_in_flight=body.integer(attributes, "max_in_flight", 1, 1000),
    )


async def list_view(request: web.Request) -> web.Response:
    query = Query(request, PAGINATION | {"integration_type"})
    org_id = await org_id_of(request)
    page = await list_integrations(
        session_of(request),
        org_id,
        query.page(),
        integration_types=list(query.many("integration_type")),
    )
    data = [integration_resource(i) for i in page.items]
    return document(data, links=page_links(request, page))


async def create_view(request: web.Request) -> web.Response:
    Query(request, ())
    org_id = await org_id_of(request)
    body = await Body.read(request, "integration")
    given = _input(body, required=("integration_type",))
    integration, token = await create_integration(
        session_of(request), context(request).box, org_id, given
    )
    resource = integration_resource(integration)
    if token is not None:
        resource["attributes"]["broker_token"] = token
    location = f"/rest/orgs/{org_id}/integrations/{integration.id}"
    response = document(resource, links={"self": location}, status=201)
    response.headers["Location"] = location
    return response


async def get_view(request: web.Request) -> web.Response:
    Query(request, ())
    org_id = await org_id_of(request)
    integration = await get_integration(
        session_of(request), org_id, path_uuid(request, "integration_id")
    )
    return document(integration_resource(integration), links={"self": request.path_qs})


async def patch_view(request: web.Request) -> web.Response:
    Query(request, ())
    org_id = await org_id_of(request)
    integration_id = path_uuid(request, "integration_id")
    await get_integration(session_of(request), org_id, integration_id)
    body = await Body.read(request, "integration", resource_id=integration_id)
    integration = await update_integration(
        session_of(request), context(request).box, org_id, integration_id, _input(body)
    )
    return document(integration_resource(integration), links={"self": request.path})


async def delete_view(request: web.Request) -> web.Response:
    Query(request, ())
    org_id = await org_id_of(request)
    await delete_integration(session_of(request), org_id, path_uuid(request, "integration_id"))
    return web.Response(status=204)


def _agent(request: web.Request) -> RegistryAgent:
    agent = context(request).agent
    if agent is None:
        raise AgentUnavailable("this control plane serves the API without an agent")
    return agent


def _agent_view(
    kind: str,
    action: AgentAction[T],
    attributes: Callable[[T, Integration], dict[str, Any]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A view running ``action`` (the function the console's button calls too) on the path's
    integration, answering a ``kind`` resource (the integration's id) of its outcome."""

    async def view(request: web.Request) -> web.Response:
        Query(request, ())
        org_id = await org_id_of(request)
        integration_id = path_uuid(request, "integration_id")
        outcome = await action(session_of(request), _agent(request), org_id, integration_id)
        integration = await get_integration(session_of(request), org_id, integration_id)
        resource = {
            "type": kind,
            "id": str(integration.id),
            "attributes": attributes(outcome, integration),
        }
        return document(resource, links={"self": request.path})

    return view


list_images_view = _agent_view(
    "integration_images_list",
    listing.update_images_list,
    lambda report, integration: {
        "listed": report.listed,
        "added": report.added,
        "listed_at": iso(integration.last_listed_at),
    },
)
refresh_status_view = _agent_view(
    "integration_status",
    listing.refresh_status,
    lambda check, integration: {
        "ok": check.ok,
        "message": check.message,
        "checked_at": iso(integration.status_checked_at),
    },
)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/rest/orgs/{org_id}/integrations", list_view)
    router.add_post("/rest/orgs/{org_id}/integrations", create_view)
    router.add_get("/rest/orgs/{org_id}/integrations/{integration_id}", get_view)
    router.add_patch("/rest/orgs/{org_id}/integrations/{integration_id}", patch_view)
    router.add_delete("/rest/orgs/{org_id}/integrations/{integration_id}", delete_view)
    one = "/rest/orgs/{org_id}/integrations/{integration_id}"
    router.add_post(f"{one}/list_images", list_images_view)
    router.add_post(f"{one}/refresh_status", refresh_status_view)
