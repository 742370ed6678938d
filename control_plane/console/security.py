"""Console sessions and CSRF.

The session is a cookie encrypted and signed with a key derived from the control plane's
secret key (aiohttp-session's EncryptedCookieStorage, Fernet), so every replica reads it and
nothing is stored server-side. Each session carries a random CSRF token; every POST must send
it back, as the ``csrf_token`` form field or the ``X-CSRF-Token`` header (htmx requests).
"""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web
from aiohttp_session import Session, get_session
from aiohttp_session import setup as setup_sessions
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from control_plane.encryption import SecretBox

COOKIE = "crbroker_console"
#: seconds a sign-in lasts
MAX_AGE = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def install(app: web.Application, box: SecretBox) -> None:
    key = bytes.fromhex(box.sign(b"console session cookie key"))
    storage = EncryptedCookieStorage(
        key,  # 32 raw bytes: aiohttp-session makes the Fernet key of them
        cookie_name=COOKIE,
        max_age=MAX_AGE,
        httponly=True,
        samesite="Lax",
        path="/console",
    )
    setup_sessions(app, storage)


def csrf_token(session: Session) -> str:
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


async def csrf_ok(request: web.Request, session: Session) -> bool:
    expected = session.get(CSRF_FIELD)
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        form = await request.post()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    return (
        isinstance(expected, str)
        and given is not None
        and hmac.compare_digest(expected.encode(), given.encode())
    )


async def session_of(request: web.Request) -> Session:
    return await get_session(request)
