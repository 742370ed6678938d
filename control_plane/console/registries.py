"""Registries: list, set up (with "Test it"), view, edit, delete, update images list, refresh
status. The same integration services as ``/rest/orgs/{org}/integrations``; the two buttons
are ``POST .../integrations/{id}/list_images`` and ``.../refresh_status`` there."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from aiohttp import web
from multidict import MultiDictProxy

from control_plane.console.app import DB_SESSION, ORG, PREFIX, ctx, redirect, render
from control_plane.errors import InvalidInput, NotFound
from control_plane.integrations import listing
from control_plane.integrations import services as integrations
from control_plane.integrations.registry_agent import BrokerConnection
from control_plane.pagination import MAX_LIMIT, PageRequest
from control_plane.projects.image_list import image_counts
from shared.credentials import KNOWN_TYPES

Form = MultiDictProxy[Any]


def _id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("registry", request.match_info["id"]) from None


def _text(form: Form, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _credentials(kind: str, form: Form) -> dict[str, str]:
    """The form's Host / Username / Password as the credentials the type takes."""
    needed = integrations.REQUIRED_CREDENTIALS.get(kind, integrations.DEFAULT_REQUIRED)
    given = {
        "registry_base": _text(form, "host"),
        "username": _text(form, "username"),
        "password": str(form.get("password") or ""),
    }
    if "token" in needed:
        given["token"] = given.pop("password")
    return {k: v for k, v in given.items() if v or k in needed}


def _input(form: Form, *, creating: bool) -> integrations.IntegrationInput:
    kind = _text(form, "type")
    brokered = _text(form, "connection") == "broker"
    host = _text(form, "host")
    if host and not host.startswith(("http://", "https://")):
        raise InvalidInput("Host must start with http:// or https://")
    wants_credentials = not brokered and (creating or bool(form.get("password")))
    return integrations.IntegrationInput(
        integration_type=kind if creating else None,
        profile_name=_text(form, "name") or None,
        has_broker=brokered if creating else None,
        is_active=form.get("is_active") == "on",
        registry_base=host or None,
        credentials=_credentials(kind, form) if wants_credentials else None,
    )


async def registries_page(request: web.Request) -> web.Response:
    db = request[DB_SESSION]
    page = await integrations.list_integrations(db, request[ORG], PageRequest(limit=MAX_LIMIT))
    counts = await image_counts(db, [i.id for i in page.items])
    return render(request, "registries.html", {"registries": page.items, "counts": counts})


def _form_values(registry: Any = None) -> dict[str, Any]:
    return {"types": KNOWN_TYPES, "registry": registry, "error": None}


async def new_page(request: web.Request) -> web.Response:
    return render(request, "registry_form.html", _form_values())


async def create(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        registry, token = await integrations.create_integration(
            request[DB_SESSION], ctx(request).box, request[ORG], _input(form, creating=True)
        )
    except InvalidInput as exc:
        values = _form_values() | {"error": exc.detail, "form": form}
        return render(request, "registry_form.html", values, status=400)
    if token is not None:  # shown this once: the broker client's BROKER_TOKEN
        counts = {registry.id: 0}
        values = {
            "registry": registry,
            "broker_token": token,
            "connection": BrokerConnection(connected=False),
            "counts": counts,
            "notice": None,
        }
        return render(request, "registry_view.html", values, status=201)
    return redirect(f"{PREFIX}/registries/{registry.id}")


async def test_it(request: web.Request) -> web.Response:
    """htmx: try the form's credentials with the co-located agent, answer a result line."""
    form = await request.post()
    kind = _text(form, "type")
    if kind not in KNOWN_TYPES:
        return render(request, "_check.html", {"ok": False, "message": "Choose a Type first."})
    try:
        check = await listing.try_credentials(ctx(request).agent, kind, _credentials(kind, form))
    except InvalidInput as exc:
        return render(request, "_check.html", {"ok": False, "message": exc.detail})
    return render(request, "_check.html", {"ok": check.ok, "message": check.message})


async def view(request: web.Request) -> web.Response:
    db = request[DB_SESSION]
    registry = await integrations.get_integration(db, request[ORG], _id(request))
    connection = await ctx(request).agent.broker_connection(registry)
    values = {
        "registry": registry,
        "broker_token": None,
        "connection": connection if registry.has_broker else None,
        "counts": await image_counts(db, [registry.id]),
        "notice": request.query.get("notice"),
    }
    return render(request, "registry_view.html", values)


async def edit_page(request: web.Request) -> web.Response:
    registry = await integrations.get_integration(request[DB_SESSION], request[ORG], _id(request))
    return render(request, "registry_form.html", _form_values(registry))


async def update(request: web.Request) -> web.Response:
    form = await request.post()
    ident = _id(request)
    try:
        await integrations.update_integration(
            request[DB_SESSION], ctx(request).box, request[ORG], ident, _input(form, creating=False)
        )
    except InvalidInput as exc:
        registry = await integrations.get_integration(request[DB_SESSION], request[ORG], ident)
        values = _form_values(registry) | {"error": exc.detail}
        return render(request, "registry_form.html", values, status=400)
    return redirect(f"{PREFIX}/registries/{ident}")


async def delete(request: web.Request) -> web.Response:
    await integrations.delete_integration(request[DB_SESSION], request[ORG], _id(request))
    return redirect(f"{PREFIX}/registries")


async def list_images(request: web.Request) -> web.Response:
    ident = _id(request)
    report = await listing.update_images_list(
        request[DB_SESSION], ctx(request).agent, request[ORG], ident
    )
    notice = f"Listed {report.listed} images, {report.added} new."
    return redirect(f"{PREFIX}/registries/{ident}?notice={quote(notice)}")


async def refresh_status(request: web.Request) -> web.Response:
    ident = _id(request)
    check = await listing.refresh_status(
        request[DB_SESSION], ctx(request).agent, request[ORG], ident
    )
    notice = f"Status: {'OK' if check.ok else 'failing'}: {check.message}"
    return redirect(f"{PREFIX}/registries/{ident}?notice={quote(notice)}")


def add_routes(router: web.UrlDispatcher) -> None:
    base = f"{PREFIX}/registries"
    router.add_get(base, registries_page)
    router.add_post(base, create)
    router.add_get(f"{base}/new", new_page)
    router.add_post(f"{base}/test", test_it)
    router.add_get(f"{base}/{{id}}", view)
    router.add_post(f"{base}/{{id}}", update)
    router.add_get(f"{base}/{{id}}/edit", edit_page)
    router.add_post(f"{base}/{{id}}/delete", delete)
    router.add_post(f"{base}/{{id}}/list-images", list_images)
    router.add_post(f"{base}/{{id}}/refresh-status", refresh_status)
