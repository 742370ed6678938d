"""Artifactory's "repository path" Docker access method in front of a real registry.

Artifactory serves each Docker repository's distribution API under
``/artifactory/api/docker/<repo-key>/v2/...`` (and rewrites ``Location``/``Link`` headers to
stay under it). This proxy does only that routing, onto Debian's docker-registry, so the
agent's handling of a path-prefixed ``registryBase`` is tested against real registry answers.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from tests.fakes.vendor_server import FakeServer

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


def artifactory_path_proxy(upstream: str, repo_key: str) -> FakeServer:
    prefix = f"/artifactory/api/docker/{repo_key}"

    async def forward(request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        url = f"{upstream}/v2/{tail}"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with aiohttp.ClientSession(auto_decompress=False) as http:
            async with http.request(
                request.method,
                url,
                params=request.query,
                headers=headers,
                data=await request.read(),
                allow_redirects=False,
            ) as upstream_resp:
                out = web.StreamResponse(status=upstream_resp.status)
                for key, value in upstream_resp.headers.items():
                    if key.lower() in HOP_HEADERS:
                        continue
                    if key.lower() in ("link", "location"):
                        value = value.replace("</v2/", f"<{prefix}/v2/").replace(
                            upstream + "/v2/", prefix + "/v2/"
                        )
                        if value.startswith("/v2/"):
                            value = prefix + value
                    out.headers[key] = value
                await out.prepare(request)
                async for chunk in upstream_resp.content.iter_chunked(65536):
                    await out.write(chunk)
                await out.write_eof()
                return out

    async def elsewhere(request: web.Request) -> web.Response:
        return web.json_response({"errors": [{"status": 404, "message": "Not Found"}]}, status=404)

    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", prefix + "/v2/{tail:.*}", forward)
    app.router.add_route("*", "/{tail:.*}", elsewhere)
    return FakeServer(app)
