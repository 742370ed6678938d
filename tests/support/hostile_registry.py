"""A registry of our own that misbehaves on purpose, bounded in time and bytes.

It speaks just enough of the OCI distribution API (``/v2/``, manifests, blobs, tag list,
catalog) to serve images built by :mod:`tests.support.images`, and each hostile behaviour is
one attribute:

- ``drip``: these blobs (digests) are sent one small piece every ``drip_interval`` seconds
  (every read is within any per-read timeout; the whole takes forever);
- ``endless_listing``: tag lists and the catalog answer a full page with a ``Link`` to a next
  page, forever (each page is new names, ``page_bytes`` long);
- ``manifest_overrides``: raw bytes served for a manifest reference (deep JSON, ...);
- ``bearer_realm``: every ``/v2/`` request is challenged for a Bearer token at that realm.

It runs in the caller's event loop (``await start()``), on 127.0.0.1 or another local
address, and records what it was asked in ``requests``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import web

from shared.port_file import bound_port
from tests.support.images import BuiltImage


@dataclass
class HostileRegistry:
    host: str = "127.0.0.1"
    drip: set[str] = field(default_factory=set)
    drip_piece: int = 1
    drip_interval: float = 0.05
    endless_listing: bool = False
    page_bytes: int = 64 * 1024
    bearer_realm: str | None = None
    manifest_overrides: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    port: int = 0
    _manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    _blobs: dict[str, bytes] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add_image(self, repository: str, tag: str, image: BuiltImage) -> None:
        self._blobs.update(image.blobs)
        for ref in (tag, image.digest):
            self._manifests[(repository, ref)] = (image.manifest, image.media_type)

    def blob_requests(self) -> list[str]:
        return [path.rsplit("/", 1)[-1] for method, path in self.requests if "/blobs/" in path]

    # -- handlers

    def _challenge(self, request: web.Request) -> web.Response | None:
        if self.bearer_realm is None or request.headers.get("Authorization", "").startswith(
            "Bearer "
        ):
            return None
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED"}]},
            status=401,
            headers={"WWW-Authenticate": f'Bearer realm="{self.bearer_realm}",service="hostile"'},
        )

    async def _route(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        refusal = self._challenge(request)
        if refusal is not None:
            return refusal
        path = request.path
        if path == "/v2/":
            return web.json_response({})
        if path == "/v2/_catalog" or path.endswith("/tags/list"):
            return self._listing(request)
        repo, sep, ref = path[len("/v2/") :].rpartition("/manifests/")
        if sep:
            return self._manifest(repo, ref, head=request.method == "HEAD")
        repo, sep, digest = path[len("/v2/") :].rpartition("/blobs/")
        if sep and digest in self._blobs:
            return await self._blob(request, self._blobs[digest], digest in self.drip)
        return web.json_response({"errors": [{"code": "NOT_FOUND"}]}, status=404)

    def _manifest(self, repo: str, ref: str, *, head: bool) -> web.Response:
        found = self.manifest_overrides.get(ref) or self._manifests.get((repo, ref))
        if found is None:
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status=404)
        body, media_type = found
        headers = {"Content-Type": media_type}
        if head:
            headers["Content-Length"] = str(len(body))
            return web.Response(headers=headers)
        return web.Response(body=body, headers=headers)

    async def _blob(self, request: web.Request, data: bytes, drip: bool) -> web.StreamResponse:
        if not drip:
            return web.Response(body=data, content_type="application/octet-stream")
        response = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await response.prepare(request)
        for start in range(0, len(data), self.drip_piece):
            await response.write(data[start : start + self.drip_piece])
            await asyncio.sleep(self.drip_interval)
        return response

    def _listing(self, request: web.Request) -> web.Response:
        key = "repositories" if request.path == "/v2/_catalog" else "tags"
        if not self.endless_listing:
            names = sorted({r for r, _ in self._manifests}) if key == "repositories" else []
            if key == "tags":
                repo = request.path[len("/v2/") : -len("/tags/list")]
                names = sorted(t for r, t in self._manifests if r == repo and ":" not in t)
            return web.json_response({key: names})
        page = int(request.query.get("page", "0"))
        width = 40
        count = max(1, self.page_bytes // (width + 3))
        names = [f"p{page:08d}-{i:08d}".ljust(width, "x") for i in range(count)]
        link = f'</v2{request.path[3:]}?n={count}&page={page + 1}>; rel="next"'
        return web.Response(
            body=json.dumps({key: names}).encode(),
            content_type="application/json",
            headers={"Link": link},
        )

    # -- lifecycle

    async def start(self) -> HostileRegistry:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._route)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        # 0 the first time: a free port, kept when started again
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = bound_port(self._runner.addresses, self.port)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
