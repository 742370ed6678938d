"""Docker Hub's hub API (docs.docker.com/reference/api/hub).

``POST /v2/auth/token`` with ``{identifier, secret}`` answers ``{access_token}`` (401 with
``detail``/``message`` otherwise); the deprecated ``POST /v2/users/login`` with
``{username, password}`` answers ``{token}``. ``GET /v2/namespaces/{namespace}/repositories``
and ``GET /v2/namespaces/{namespace}/repositories/{repository}/tags`` (and the older
``/v2/repositories/...`` forms) answer ``{count, next, previous, results}`` pages (``page``,
``page_size``) for a ``Bearer`` token. ``new_auth=False`` plays a Hub without the new route.
"""

from __future__ import annotations

import secrets
import urllib.parse

from aiohttp import web

from tests.fakes.vendor_server import FakeServer, page_of


def fake_docker_hub(
    username: str, password: str, repos: dict[str, dict[str, str]], *, new_auth: bool = True
) -> FakeServer:
    """``repos``: {"namespace/name": {tag: digest}}."""
    tokens: set[str] = set()

    async def login(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("username") != username or body.get("password") != password:
            return web.json_response({"detail": "Incorrect authentication credentials"}, status=401)
        token = secrets.token_urlsafe(24)
        tokens.add(token)
        return web.json_response({"token": token})

    async def auth_token(request: web.Request) -> web.Response:
        if not new_auth:
            return web.json_response({"detail": "Not found"}, status=404)
        body = await request.json()
        if body.get("identifier") != username or body.get("secret") != password:
            return web.json_response(
                {"errinfo": {}, "detail": "invalid credentials", "message": "unauthorized"},
                status=401,
            )
        token = secrets.token_urlsafe(24)
        tokens.add(token)
        return web.json_response({"access_token": token})

    def authorised(request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.split(" ", 1)[-1] in tokens and header.split(" ", 1)[0] in ("Bearer", "JWT")

    def paged(request: web.Request, items: list) -> web.Response:
        chunk, page, more = page_of(items, request, size_param="page_size", default=10)

        def link(n: int) -> str:
            query = {**request.query, "page": str(n)}
            return f"{request.url.origin()}{request.path}?{urllib.parse.urlencode(query)}"

        return web.json_response(
            {
                "count": len(items),
                "next": link(page + 1) if more else None,
                "previous": link(page - 1) if page > 1 else None,
                "results": chunk,
            }
        )

    async def repositories(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.json_response({"detail": "authentication required"}, status=401)
        ns = request.match_info["namespace"]
        names = sorted(k.split("/", 1)[1] for k in repos if k.split("/", 1)[0] == ns)
        items = [
            {
                "name": n,
                "namespace": ns,
                "repository_type": "image",
                "is_private": True,
                "status": 1,
            }
            for n in names
        ]
        return paged(request, items)

    async def tags(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.json_response({"detail": "authentication required"}, status=401)
        key = f"{request.match_info['namespace']}/{request.match_info['name']}"
        if key not in repos:
            return web.json_response({"message": "object not found"}, status=404)
        items = [
            {
                "name": tag,
                "digest": digest,
                "last_updated": "2024-05-01T12:00:00.000000Z",
                "tag_last_pushed": f"2024-05-0{i + 1}T12:00:00.000000Z",
                "tag_status": "active",
            }
            for i, (tag, digest) in enumerate(sorted(repos[key].items()))
        ]
        return paged(request, items)

    app = web.Application()
    app.router.add_post("/v2/auth/token", auth_token)
    app.router.add_post("/v2/users/login", login)
    app.router.add_get("/v2/namespaces/{namespace}/repositories", repositories)
    app.router.add_get("/v2/namespaces/{namespace}/repositories/{name}/tags", tags)
    app.router.add_get("/v2/repositories/{namespace}/", repositories)
    app.router.add_get("/v2/repositories/{namespace}/{name}/tags", tags)
    return FakeServer(app)
