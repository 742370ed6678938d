"""The console's request pipeline and mounting.

Every ``/console`` request (static files aside): session read, CSRF checked on POST, the
signed-in user turned into a principal (else a redirect to sign-in), one database
transaction around the handler, and a domain refusal rendered as a page naming what is wrong.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.accounts.services import Principal, home_org, principal_of_user
from control_plane.console import security
from control_plane.db import Database
from control_plane.encryption import SecretBox
from control_plane.errors import DomainError, NotFound
from control_plane.integrations.registry_agent import RegistryAgent
from shared.logging import get_logger

log = get_logger("control_plane.console")

HERE = Path(__file__).parent
PREFIX = "/console"
PUBLIC = {f"{PREFIX}/sign-in"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ConsoleContext:
    db: Database
    box: SecretBox
    agent: RegistryAgent
    #: tell this process's dispatcher that scans were queued
    wake: Callable[[], None]


CONSOLE = web.AppKey("console", ConsoleContext)
DB_SESSION = web.RequestKey("console_db", AsyncSession)
PRINCIPAL = web.RequestKey("console_principal", Principal)
ORG = web.RequestKey("console_org", uuid.UUID)
CSRF = web.RequestKey("console_csrf", str)
AFTER_COMMIT = web.RequestKey("console_after_commit", list[Callable[[], None]])


def ctx(request: web.Request) -> ConsoleContext:
    return request.config_dict[CONSOLE]


def render(
    request: web.Request, template: str, values: dict[str, Any], status: int = 200
) -> web.Response:
    values = {"csrf_token": request.get(CSRF, ""), "principal": request.get(PRINCIPAL), **values}
    return aiohttp_jinja2.render_template(template, request, values, status=status)


def path_id(request: web.Request, what: str, key: str = "id") -> uuid.UUID:
    """The path's ``key`` as a UUID; a malformed one is a ``what`` not found."""
    try:
        return uuid.UUID(request.match_info[key])
    except ValueError:
        raise NotFound(what, request.match_info[key]) from None


def redirect(location: str) -> web.Response:
    """303 See Other (a Response, not a raised exception: the transaction must commit)."""
    return web.Response(status=303, headers={"Location": location})


def after_commit(request: web.Request, callback: Callable[[], None]) -> None:
    request[AFTER_COMMIT].append(callback)


def _refused(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html", {"message": message}, status=status)


async def _nul_field(request: web.Request) -> str | None:
    """The name of a query or form field holding a NUL character (PostgreSQL stores no
    such text), or None."""
    fields = list(request.query.items())
    if request.method == "POST":
        fields += [(k, v) for k, v in (await request.post()).items() if isinstance(v, str)]
    return next((k for k, v in fields if "\x00" in k or "\x00" in v), None)


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if not (path == PREFIX or path.startswith(PREFIX + "/")) or path.startswith(
        PREFIX + "/static/"
    ):
        return await handler(request)
    session = await security.session_of(request)
    request[CSRF] = security.csrf_token(session)
    if request.method == "POST" and not await security.csrf_ok(request, session):
        log.warning("console: form without a valid CSRF token refused", path=path)
        return _refused(request, 403, "This form was refused: its CSRF token is missing or wrong.")
    held = await _nul_field(request)
    if held is not None:
        return _refused(request, 400, f"The field {held} holds a NUL character: refused.")
    request[AFTER_COMMIT] = []
    console = ctx(request)
    try:
        async with console.db.sessions() as db, db.begin():
            request[DB_SESSION] = db
            user_id = session.get("user_id")
            principal = await principal_of_user(db, uuid.UUID(user_id)) if user_id else None
            if principal is None and path not in PUBLIC:
                wanted = request.path_qs if request.method == "GET" else PREFIX
                return redirect(f"{PREFIX}/sign-in?next={quote(wanted, safe='')}")
            if principal is not None:
                request[PRINCIPAL] = principal
                request[ORG] = (await home_org(db, principal)).id
            response = await handler(request)
    except DomainError as exc:
        return _refused(request, exc.status, exc.detail)
    except web.HTTPException:  # aiohttp's own answers (not found, redirects): as they are
        raise
    except Exception:  # a fault of ours: an error page, the traceback in the log
        request_id = uuid.uuid4().hex[:12]
        log.exception("console: request failed", path=path, request_id=request_id)
        return _refused(
            request,
            500,
            f"This page failed on the server; its log names this request {request_id}.",
        )
    for callback in request[AFTER_COMMIT]:
        try:
            callback()
        except Exception:  # committed already
            log.exception("console: after-commit callback failed", path=path)
    return response


async def home(request: web.Request) -> web.Response:
    return redirect(f"{PREFIX}/images")


def setup_templates(app: web.Application) -> None:
    """The console's templates on ``app``: everything rendered is escaped (names come from
    registries and users)."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def setup_console(
    app: web.Application,
    db: Database,
    box: SecretBox,
    agent: RegistryAgent,
    wake: Callable[[], None],
) -> None:
    """Mount the console on ``app`` (before it starts)."""
    from control_plane.console import images, registries, signin

    app[CONSOLE] = ConsoleContext(db=db, box=box, agent=agent, wake=wake)
    security.install(app, box)
    setup_templates(app)
    app.middlewares.append(console_middleware)
    app.router.add_get("/", home)
    app.router.add_get(PREFIX, home)
    app.router.add_static(f"{PREFIX}/static", HERE / "static", append_version=True)
    for module in (signin, registries, images):
        module.add_routes(app.router)

    async def close_agent(_: web.Application) -> None:
        await agent.close()

    app.on_cleanup.append(close_agent)
