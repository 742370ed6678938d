"""A stand-in for the broker client's callback listener: records every POST it gets.

It can refuse the first ``fail_first`` requests with ``fail_status`` (to exercise retries)
and de-duplicates on ``Idempotency-Key`` the way a careful receiver would (409 for a repeat).
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class CallbackReceiver:
    fail_first: int = 0
    fail_status: int = 503
    received: list[Received] = field(default_factory=list)
    refused: int = 0
    keys: set[str] = field(default_factory=set)
    #: every POST that got past ``fail_first``, duplicates included: (path, Idempotency-Key)
    posts: list[tuple[str, str]] = field(default_factory=list)
    server: TestServer | None = None
    event: asyncio.Event = field(default_factory=asyncio.Event)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.refused < self.fail_first:
            self.refused += 1
            return web.json_response({"error": "not now"}, status=self.fail_status)
        key = request.headers.get("Idempotency-Key", "")
        self.posts.append((request.path, key))
        if key and key in self.keys:
            return web.json_response({"duplicate": key}, status=409)
        self.keys.add(key)
        self.received.append(Received(request.path, dict(request.headers), body))
        self.event.set()
        return web.json_response({"ok": True})

    async def start(self, reserved: socket.socket | None = None) -> CallbackReceiver:
        """Listen on a free port, or on ``reserved`` (``deploy.processes.reserve_port``):
        a port the agent was told about before the receiver existed."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self._handle)
        if reserved is None:
            self.server = TestServer(app, host="127.0.0.1")
        else:
            self.server = TestServer(app, host="127.0.0.1", socket_factory=lambda *_: reserved)
        await self.server.start_server()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def wait_for(
        self, path: str, count: int = 1, wait_seconds: float = 60.0
    ) -> list[Received]:
        async with asyncio.timeout(wait_seconds):
            while len(self.on(path)) < count:
                self.event.clear()
                await self.event.wait()
        return self.on(path)
