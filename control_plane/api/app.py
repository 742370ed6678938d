"""The API application: routes, the request pipeline, and what each request carries.

Every ``/rest/...`` and ``/v1/...`` request goes through :func:`api_middleware`: version
checked (REST), one database transaction opened, the token turned into a
:class:`~control_plane.accounts.services.Principal`, the view run, and any refusal rendered
as an error object. A refused request rolls its transaction back, so nothing is stored.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.accounts.services import Principal, visible_org_id
from control_plane.api.auth import Unauthorized, principal_from_header
from control_plane.api.jsonapi import (
    domain_error_response,
    dumps,
    error_response,
    served_version,
)
from control_plane.api.metrics import ApiMetrics
from control_plane.api.query import path_uuid
from control_plane.db import Database
from control_plane.encryption import SecretBox
from control_plane.errors import DomainError, InvalidInput
from control_plane.integrations.registry_agent import RegistryAgent
from shared.logging import get_logger

log = get_logger("control_plane.api")

OPENAPI = Path(__file__).with_name("openapi.json")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ApiContext:
    db: Database
    box: SecretBox
    metrics: ApiMetrics
    #: the way to the registries' agents ("Update images list", "Refresh status"); None in
    #: an API served without one
    agent: RegistryAgent | None = None


CONTEXT = web.AppKey("control_plane", ApiContext)
SESSION = web.RequestKey("cp_session", AsyncSession)
PRINCIPAL = web.RequestKey("cp_principal", Principal)
AFTER_COMMIT = web.RequestKey("cp_after_commit", list[Callable[[], None]])


def context(request: web.Request) -> ApiContext:
    return request.config_dict[CONTEXT]


def session_of(request: web.Request) -> AsyncSession:
    """The request's database session (inside its one transaction)."""
    return request[SESSION]


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]


async def org_id_of(request: web.Request) -> uuid.UUID:
    """The path's ``org_id``, if the caller may see that org (else NotFound)."""
    return await visible_org_id(
        session_of(request), principal_of(request), path_uuid(request, "org_id")
    )


def on_commit(request: web.Request, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the request's transaction has committed (not if it rolls back),
    before the answer is sent: e.g. wake a dispatcher for the scans the view queued."""
    request[AFTER_COMMIT].append(callback)


#: agents' callbacks under /v1/: they prove themselves with a scan's ticket, not a token
_CALLBACKS = "/v1/recurring-tests/"


def _kind(path: str) -> str | None:
    if path == "/rest" or path.startswith("/rest/"):
        return "rest"
    if path.startswith("/v1/") and not path.startswith(_CALLBACKS):
        return "v1"
    return None


def _v1_error(status: int, title: str, detail: str) -> web.Response:
    # Snyk's v1 API answers errors as {"code", "message", "error"}
    return web.Response(
        text=dumps({"code": status, "message": detail, "error": title}),
        status=status,
        content_type="application/json",
    )


def _error(kind: str, status: int, title: str, detail: str) -> web.Response:
    if kind == "v1":
        return _v1_error(status, title, detail)
    return error_response(status, title, detail)


def _requested_version(request: web.Request) -> str:
    values = set(request.query.getall("version", []))
    if not values:
        raise InvalidInput("version is required (a date such as 2024-05-31)", parameter="version")
    if len(values) > 1:
        raise InvalidInput(
            "version was given more than once with different values", parameter="version"
        )
    return values.pop()


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    kind = _kind(request.path)
    if kind is None:
        return await handler(request)
    ctx = context(request)
    started = time.perf_counter()
    request_id = request.headers.get("snyk-request-id") or str(uuid.uuid4())
    headers: dict[str, str] = {"snyk-request-id": request_id}
    response: web.StreamResponse
    try:
        if kind == "rest":
            requested = _requested_version(request)
            served, stage = served_version(requested)
            headers |= {
                "snyk-version-requested": requested,
                "snyk-version-served": served,
                "snyk-version-lifecycle-stage": stage,
            }
        request[AFTER_COMMIT] = []
        async with ctx.db.sessions() as session, session.begin():
            request[SESSION] = session
            request[PRINCIPAL] = await principal_from_header(
                session, request.headers.get("Authorization")
            )
            response = await handler(request)
        for callback in request[AFTER_COMMIT]:
            try:
                callback()
            except Exception:  # committed already: the answer stands
                log.exception("after-commit callback failed", path=request.path)
    except Unauthorized as exc:
        response = _error(kind, 401, "Unauthorized", exc.detail)
    except DomainError as exc:
        if kind == "v1":
            response = _v1_error(exc.status, exc.title, exc.detail)
        else:
            response = domain_error_response(exc)
    except web.HTTPException as exc:  # unknown route, wrong method
        if exc.status < 400:
            raise
        # a body over client_max_size: aiohttp's text names the limit
        said = exc.text if exc.status == 413 and exc.text else exc.reason
        response = _error(kind, exc.status, exc.reason, f"{request.method} {request.path}: {said}")
    except Exception:  # a fault of ours: the caller gets an error document, the log the rest
        log.exception(
            "api request failed", method=request.method, path=request.path, request_id=request_id
        )
        response = _error(
            kind,
            500,
            "Internal Server Error",
            f"{request.method} {request.path} failed in the server; its log has the details "
            f"under request id {request_id}",
        )
    response.headers.update(headers)
    route = request.match_info.route.resource
    label = route.canonical if route is not None else "unmatched"
    elapsed = time.perf_counter() - started
    ctx.metrics.requests.labels(label, request.method, str(response.status)).inc()
    ctx.metrics.latency.labels(label).observe(elapsed)
    log.debug(
        "api request",
        method=request.method,
        path=request.path,
        status=response.status,
        ms=round(elapsed * 1000, 2),
        request_id=request_id,
    )
    return response


async def healthcheck(request: web.Request) -> web.Response:
    """200 when the database answers, 503 naming the problem when not."""
    ctx = context(request)
    try:
        async with ctx.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("healthcheck: database unreachable", error=type(exc).__name__)
        return web.json_response(
            {"ok": False, "database": f"unreachable ({type(exc).__name__})"}, status=503
        )
    return web.json_response({"ok": True, "database": ctx.db.dialect})


async def metrics(request: web.Request) -> web.Response:
    body = context(request).metrics.render()
    return web.Response(body=body, headers={"Content-Type": ApiMetrics.content_type})


async def openapi(request: web.Request) -> web.FileResponse:
    return web.FileResponse(OPENAPI, headers={"Content-Type": "application/json"})


async def freeze_heap(_app: web.Application) -> None:
    """Move what start-up built (modules, SQLAlchemy's metadata and caches, the app) out of
    the collector's reach: a full collection otherwise walks all of it, and on a loaded
    machine those pauses (up to 170 ms measured) were the API's p99."""
    gc.collect()
    gc.freeze()


def setup_api(
    app: web.Application,
    db: Database,
    box: SecretBox,
    *,
    metrics_: ApiMetrics | None = None,
    agent: RegistryAgent | None = None,
) -> None:
    """Add the control plane's routes, middleware and context to ``app`` (before it starts)."""
    from control_plane.advisories import views as advisories
    from control_plane.api import (
        container_import,
        integrations,
        orgs,
        projects,
        targets,
        users,
        v1,
    )

    app[CONTEXT] = ApiContext(db=db, box=box, metrics=metrics_ or ApiMetrics(), agent=agent)
    app.middlewares.append(api_middleware)
    app.on_startup.append(freeze_heap)
    app.router.add_get("/healthcheck", healthcheck)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    for module in (orgs, projects, targets, integrations, users, v1, container_import, advisories):
        module.add_routes(app.router)


def create_api_app(
    db: Database,
    box: SecretBox,
    *,
    metrics_: ApiMetrics | None = None,
    agent: RegistryAgent | None = None,
) -> web.Application:
    """A standalone aiohttp application serving the control plane's API."""
    app = web.Application()
    setup_api(app, db, box, metrics_=metrics_, agent=agent)
    return app
