"""Sign-in and sign-out."""

from __future__ import annotations

from aiohttp import web

from control_plane.accounts.services import sign_in
from control_plane.console.app import DB_SESSION, PREFIX, redirect, render
from control_plane.console.security import session_of


def _next(value: object) -> str:
    # only a path of the console itself: never an open redirect
    text = value if isinstance(value, str) else ""
    return text if text.startswith(PREFIX + "/") and not text.startswith("//") else PREFIX


async def sign_in_page(request: web.Request) -> web.Response:
    return render(request, "signin.html", {"next": _next(request.query.get("next")), "error": None})


async def sign_in_post(request: web.Request) -> web.Response:
    form = await request.post()
    username = str(form.get("username", "")).strip()
    principal = await sign_in(request[DB_SESSION], username, str(form.get("password", "")))
    if principal is None:
        values = {"next": _next(form.get("next")), "error": "Wrong user name or password."}
        return render(request, "signin.html", values, status=401)
    session = await session_of(request)
    csrf = session.get("csrf_token")
    session.invalidate()  # a new session on sign-in: no fixation
    session = await session_of(request)
    session["user_id"] = str(principal.user_id)
    session["csrf_token"] = csrf
    return redirect(_next(form.get("next")))


async def sign_out(request: web.Request) -> web.Response:
    (await session_of(request)).invalidate()
    return redirect(f"{PREFIX}/sign-in")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(f"{PREFIX}/sign-in", sign_in_page)
    router.add_post(f"{PREFIX}/sign-in", sign_in_post)
    router.add_post(f"{PREFIX}/sign-out", sign_out)
