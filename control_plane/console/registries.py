"""Registries: list, set up (with "Test it"), view (with the sync policy), edit, delete, update
images list, refresh status. The same integration services as ``/rest/orgs/{org}/integrations``; the two buttons
are ``POST .../integrations/{id}/list_images`` and ``.../refresh_status`` there."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from aiohttp import web
from multidict import MultiDictProxy

from control_plane.console import sync_policy
from control_plane.console.app import DB_SESSION, ORG, PREFIX, ctx, path_id, redirect, render
from control_plane.errors import InvalidInput
from control_plane.integrations import listing
from control_plane.integrations import services as integrations
from control_plane.models import Integration
from control_plane.pagination import MAX_LIMIT, PageRequest
from control_plane.projects.image_list import image_counts
from control_plane.sync import services as sync
from shared.credentials import KNOWN_TYPES

Form = MultiDictProxy[Any]


def _id(request: web.Request) -> uuid.UUID:
    return path_id(request, "registry")


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
        values = await view_values(request, registry) | {"broker_token": token}
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


async def view_values(
    request: web.Request, registry: Integration, policy_form: sync_policy.PolicyForm | None = None
) -> dict[str, Any]:
    db = request[DB_SESSION]
    connection = await ctx(request).agent.broker_connection(registry)
    return {
        "registry": registry,
        "broker_token": None,
        "connection": connection if registry.has_broker else None,
        "counts": await image_counts(db, [registry.id]),
        "notice": request.query.get("notice"),
        **await sync_policy.sync_values(db, registry, policy_form),
    }


async def view(request: web.Request) -> web.Response:
    registry = await integrations.get_integration(request[DB_SESSION], request[ORG], _id(request))
    return render(request, "registry_view.html", await view_values(request, registry))


async def save_sync_policy(request: web.Request) -> web.Response:
    """Create or replace the sync policy (the API's ``POST .../container_import/{id}/policy``)."""
    ident = _id(request)
    db = request[DB_SESSION]
    form = sync_policy.PolicyForm.posted(await request.post())
    try:
        policy = form.policy()
    except InvalidInput as exc:
        registry = await integrations.get_integration(db, request[ORG], ident)
        values = await view_values(request, registry, form) | {"policy_error": exc}
        return render(request, "registry_view.html", values, status=400)
    row = await sync.put_policy(db, request[ORG], ident, policy)
    sync_policy.wake_scheduler(request)
    notice = f"Sync policy {row.document['name']} saved."
    return redirect(f"{PREFIX}/registries/{ident}?notice={quote(notice)}")


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
    router.add_post(f"{base}/{{id}}/sync-policy", save_sync_policy)
    sync_policy.add_routes(router)
