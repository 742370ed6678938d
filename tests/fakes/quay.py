"""Quay API v1 (docs.quay.io/api/swagger) with a registry whose catalog is missing.

``GET /api/v1/repository?namespace=<ns>`` with ``Authorization: Bearer <OAuth token>``
answers ``{repositories: [{namespace, name, description, is_public, kind}], next_page}``;
``next_page`` is an opaque token sent back as ``next_page``. ``/v2/_catalog`` answers 404.
"""

from __future__ import annotations

from aiohttp import web

from tests.fakes.vendor_server import FakeServer

PAGE = 2


def fake_quay(token: str, repos: list[str]) -> FakeServer:
    """``repos``: ["namespace/name", ...]."""

    async def v2(request: web.Request) -> web.Response:
        return web.json_response({})

    async def catalog(request: web.Request) -> web.Response:
        return web.json_response({"errors": [{"code": "UNSUPPORTED"}]}, status=404)

    async def repository(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return web.json_response(
                {"error_message": "Requires authentication", "status": 401}, status=401
            )
        ns = request.query.get("namespace")
        names = sorted(r for r in repos if ns and r.split("/", 1)[0] == ns)
        start = int(request.query.get("next_page", "0") or 0)
        chunk = names[start : start + PAGE]
        body: dict[str, object] = {
            "repositories": [
                {
                    "namespace": r.split("/", 1)[0],
                    "name": r.split("/", 1)[1],
                    "description": None,
                    "is_public": False,
                    "kind": "image",
                }
                for r in chunk
            ]
        }
        if start + PAGE < len(names):
            body["next_page"] = str(start + PAGE)
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/v2/", v2)
    app.router.add_get("/v2/_catalog", catalog)
    app.router.add_get("/api/v1/repository", repository)
    return FakeServer(app)
