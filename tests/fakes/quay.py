"""Quay API v1 (docs.quay.io/api/swagger) with a registry whose catalog is missing.

``GET /api/v1/repository?namespace=<ns>`` with ``Authorization: Bearer <OAuth token>``
answers ``{repositories: [{namespace, name, description, is_public, kind}], next_page}``;
``next_page`` is an opaque token sent back as ``next_page``. ``/v2/_catalog`` answers 404.
``GET /api/v1/repository/{ns}/{name}/tag/?onlyActiveTags=true&page=&limit=`` answers
``{tags: [{name, manifest_digest, start_ts, last_modified, size, reversion}], page,
has_additional}``.
"""

from __future__ import annotations

from aiohttp import web

from tests.fakes.vendor_server import FakeServer

PAGE = 2


def fake_quay(
    token: str, repos: list[str], tags: dict[str, dict[str, str]] | None = None
) -> FakeServer:
    """``repos``: ["namespace/name", ...]; ``tags``: {"namespace/name": {tag: digest}}."""
    tags = tags or {}

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

    async def repo_tags(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return web.json_response(
                {"error_message": "Requires authentication", "status": 401}, status=401
            )
        key = f"{request.match_info['ns']}/{request.match_info['name']}"
        if key not in tags:
            return web.json_response({"error_message": "Not Found", "status": 404}, status=404)
        limit = int(request.query.get("limit", 50))
        page = int(request.query.get("page", 1))
        rows = [
            {
                "name": name,
                "reversion": False,
                "start_ts": 1717236000 + i * 86400,
                "manifest_digest": digest,
                "is_manifest_list": False,
                "size": 1234,
                "last_modified": "Sat, 01 Jun 2024 10:00:00 -0000",
            }
            for i, (name, digest) in enumerate(sorted(tags[key].items()))
        ]
        chunk = rows[(page - 1) * limit : page * limit]
        return web.json_response(
            {"tags": chunk, "page": page, "has_additional": page * limit < len(rows)}
        )

    app = web.Application()
    app.router.add_get("/api/v1/repository/{ns}/{name}/tag/", repo_tags)
    app.router.add_get("/v2/", v2)
    app.router.add_get("/v2/_catalog", catalog)
    app.router.add_get("/api/v1/repository", repository)
    return FakeServer(app)
