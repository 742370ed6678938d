"""DigitalOcean container registry API (docs.digitalocean.com/reference/api).

``Authorization: Bearer <token>``. ``GET /v2/registry`` -> ``{registry: {name, ...}}``;
``GET /v2/registry/{name}/repositoriesV2`` -> ``{repositories: [{registry_name, name,
tag_count, manifest_count, latest_manifest}], links: {pages: {next}}, meta: {total}}`` paged
with ``per_page`` and ``page_token``; ``.../repositories/{repo}/digests`` -> ``{manifests:
[{digest, updated_at, tags, ...}]}``.
"""

from __future__ import annotations

import urllib.parse

from aiohttp import web

from tests.fakes.vendor_server import FakeServer


def fake_digitalocean(token: str, registry: str, repos: dict[str, dict[str, str]]) -> FakeServer:
    """``repos``: {name: {tag: digest}} in the one registry ``registry``."""

    def denied(request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return web.json_response(
                {"id": "Unauthorized", "message": "Unable to authenticate you"}, status=401
            )
        return None

    async def get_registry(request: web.Request) -> web.Response:
        if (answer := denied(request)) is not None:
            return answer
        return web.json_response(
            {"registry": {"name": registry, "region": "fra1", "created_at": "2024-01-01T00:00:00Z"}}
        )

    async def repositories(request: web.Request) -> web.Response:
        if (answer := denied(request)) is not None:
            return answer
        if request.match_info["registry"] != registry:
            return web.json_response(
                {"id": "not_found", "message": "registry not found"}, status=404
            )
        names = sorted(repos)
        size = int(request.query.get("per_page", 20))
        start = int(request.query.get("page_token", "0") or 0)
        chunk = names[start : start + size]
        body: dict[str, object] = {
            "repositories": [
                {
                    "registry_name": registry,
                    "name": n,
                    "tag_count": len(repos[n]),
                    "manifest_count": len(set(repos[n].values())),
                }
                for n in chunk
            ],
            "meta": {"total": len(names)},
            "links": {},
        }
        if start + size < len(names):
            query = urllib.parse.urlencode({"per_page": size, "page_token": start + size})
            body["links"] = {"pages": {"next": f"{request.url.origin()}{request.path}?{query}"}}
        return web.json_response(body)

    async def digests(request: web.Request) -> web.Response:
        if (answer := denied(request)) is not None:
            return answer
        name = urllib.parse.unquote(request.match_info["repo"])
        if name not in repos:
            return web.json_response(
                {"id": "not_found", "message": "repository not found"}, status=404
            )
        by_digest: dict[str, list[str]] = {}
        for tag, digest in sorted(repos[name].items()):
            by_digest.setdefault(digest, []).append(tag)
        manifests = [
            {
                "registry_name": registry,
                "repository": name,
                "digest": d,
                "compressed_size_bytes": 100,
                "size_bytes": 200,
                "updated_at": "2024-07-01T09:30:00Z",
                "tags": tags,
                "blobs": [],
            }
            for d, tags in by_digest.items()
        ]
        return web.json_response(
            {"manifests": manifests, "meta": {"total": len(manifests)}, "links": {}}
        )

    app = web.Application()
    app.router.add_get("/v2/registry", get_registry)
    app.router.add_get("/v2/registry/{registry}/repositoriesV2", repositories)
    app.router.add_get("/v2/registry/{registry}/repositories/{repo}/digests", digests)
    return FakeServer(app)
