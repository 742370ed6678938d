"""A reverse proxy in front of the real test registry that misbehaves on request.

docker-registry with filesystem storage never redirects, rate-limits or corrupts; this proxy
adds exactly those behaviours (as S3-backed registries, Docker Hub and broken networks show
them) while everything else comes from the real registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from shared.port_file import bound_port


@dataclass
class Misbehaviour:
    method: str
    path: str  # regex on the path
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    times: int = 1


class TamperProxy:
    def __init__(self, upstream: str, *, prefix: str = "") -> None:
        self.upstream = upstream.rstrip("/")
        self.prefix = prefix.rstrip("/")  # served under a path prefix, as Artifactory does
        self.failures: list[Misbehaviour] = []
        self.corrupt_blobs = False
        self.redirect_blobs_to: str | None = None  # another origin serving /storage/...
        self.extra_headers: dict[str, str] = {}
        self.link_override: str | None = None
        self.body_override: dict[str, bytes] = {}  # path regex -> body
        self.seen: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        self.storage_auth_seen: list[str | None] = []
        self.port = 0
        self.storage_port = 0
        self._runners: list[web.AppRunner] = []
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _forward(self, request: web.Request, path: str) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + path,
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as up:
            data = await up.read()
            out_headers = {
                k: v
                for k, v in up.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
            }
            return web.Response(status=up.status, body=data, headers=out_headers)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.path_qs
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                return web.Response(status=404, text="outside the prefix")
            path = path[len(self.prefix) :]
        self.seen.append((request.method, request.path, request.headers.get("Authorization")))
        for rule in self.failures:
            if (
                rule.times > 0
                and rule.method == request.method
                and re.search(rule.path, request.path)
            ):
                rule.times -= 1
                return web.Response(status=rule.status, headers=rule.headers, body=rule.body)
        for pattern, body in self.body_override.items():
            if re.search(pattern, request.path) and request.method == "GET":
                resp = await self._forward(request, path)
                return web.Response(
                    status=200,
                    body=body,
                    headers={"Content-Type": resp.headers.get("Content-Type", "application/json")},
                )
        if self.redirect_blobs_to and "/blobs/sha256:" in request.path and request.method == "GET":
            return web.Response(
                status=307,
                headers={
                    "Location": f"{self.redirect_blobs_to}/storage{request.path}?X-Signature=abc"
                },
            )
        resp = await self._forward(request, path)
        for key, value in self.extra_headers.items():
            resp.headers[key] = value
        if self.link_override and request.path.endswith(("/_catalog", "/tags/list")):
            resp.headers["Link"] = self.link_override
        if (
            self.corrupt_blobs
            and "/blobs/sha256:" in request.path
            and isinstance(resp, web.Response)
            and isinstance(resp.body, bytes)
            and resp.body
        ):
            data = bytearray(resp.body)
            data[len(data) // 2] ^= 0xFF
            resp.body = bytes(data)
        return resp

    async def _storage(self, request: web.Request) -> web.StreamResponse:
        self.storage_auth_seen.append(request.headers.get("Authorization"))
        return await self._forward(request, request.path[len("/storage") :])

    async def start(self) -> TamperProxy:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        for handler, attr in ((self._handle, "port"), (self._storage, "storage_port")):
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handler)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            setattr(self, attr, bound_port(runner.addresses, 0))
            self._runners.append(runner)
        return self

    @property
    def storage_url(self) -> str:
        return f"http://127.0.0.1:{self.storage_port}"

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        if self._session is not None:
            await self._session.close()
