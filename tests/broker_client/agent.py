"""A small test agent (stands in for the container registry agent) and a fake upstream API.

Both record what reached them so tests can assert on it, and both can run in-process (tests)
or as a subprocess (``python -m tests.broker_client.agent PORT``, for the benchmark).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from shared.port_file import bound_port

BLOCK = random.Random(1234).randbytes(1 << 20)  # 1 MiB of fixed pseudo-random bytes
CHUNK = 256 * 1024
#: Authorization values ``/validate`` accepts (set by the test before the app starts).
VALID_AUTH_KEY = web.AppKey("valid_auth", tuple)


def big_body(size: int) -> bytes:
    """The exact bytes ``/list/big/<size>`` answers with (for sha256 comparisons)."""
    whole, rest = divmod(size, len(BLOCK))
    return BLOCK * whole + BLOCK[:rest]


def big_sha256(size: int) -> str:
    digest = hashlib.sha256()
    whole, rest = divmod(size, len(BLOCK))
    for _ in range(whole):
        digest.update(BLOCK)
    digest.update(BLOCK[:rest])
    return digest.hexdigest()


@dataclass
class Recorder:
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def record(self, request: web.Request) -> dict[str, Any]:
        body = await request.read()
        entry = {
            "method": request.method,
            "path_qs": request.raw_path,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        self.seen.append(entry)
        return entry


def agent_app(recorder: Recorder) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        # x-test-status lets a test ask for an error answer from the agent
        status = int(request.headers.get("x-test-status", "200"))
        return web.json_response(await recorder.record(request), status=status)

    async def big(request: web.Request) -> web.StreamResponse:
        await recorder.record(request)
        size = int(request.match_info["size"])
        response = web.StreamResponse(headers={"content-type": "application/octet-stream"})
        response.content_length = size
        await response.prepare(request)
        whole, rest = divmod(size, len(BLOCK))
        view = memoryview(BLOCK)
        for _ in range(whole):
            for start in range(0, len(BLOCK), CHUNK):
                await response.write(view[start : start + CHUNK])
        for start in range(0, rest, CHUNK):
            await response.write(view[start : min(start + CHUNK, rest)])
        await response.write_eof()
        return response

    async def validate(request: web.Request) -> web.Response:
        # systemcheck target: 200 only for an Authorization value the test allowed
        await recorder.record(request)
        allowed = request.app.get(VALID_AUTH_KEY, ())
        ok = request.headers.get("authorization") in allowed
        return web.json_response({"ok": ok}, status=200 if ok else 401)

    async def broken(request: web.Request) -> web.StreamResponse:
        # declares the full size, sends half of it, then drops the connection
        await recorder.record(request)
        size = int(request.match_info["size"])
        response = web.StreamResponse(headers={"content-type": "application/octet-stream"})
        response.content_length = size
        await response.prepare(request)
        await response.write(big_body(size // 2))
        assert request.transport is not None
        request.transport.close()
        return response

    async def slow(request: web.Request) -> web.Response:
        import asyncio

        await recorder.record(request)
        await asyncio.sleep(int(request.match_info["ms"]) / 1000)
        return web.json_response({"slow": True})

    async def small(request: web.Request) -> web.Response:
        return web.json_response({"repositories": ["library/ubuntu", "library/alpine"]})

    app = web.Application(client_max_size=64 << 20)
    app.router.add_get("/list/big/{size:\\d+}", big)
    app.router.add_get("/list/small", small)
    app.router.add_get("/validate", validate)
    app.router.add_get("/list/slow/{ms:\\d+}", slow)
    app.router.add_get("/list/broken/{size:\\d+}", broken)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


def upstream_app(recorder: Recorder) -> web.Application:
    """The 'Snyk API' behind the broker server: records callbacks, answers 201 JSON."""

    async def callback(request: web.Request) -> web.Response:
        entry = await recorder.record(request)
        return web.json_response(
            {"received": entry["path_qs"], "bytes": len(entry["body"])}, status=201
        )

    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", callback)
    return app


async def start(app: web.Application, port: int = 0) -> web.AppRunner:
    """Serve ``app`` on 127.0.0.1:``port`` (0: a free one; ``runner.addresses`` has it)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    # small answers must not wait for Nagle (aiohttp sets it per connection too)
    server = site._server
    for sock in getattr(server, "sockets", []) or []:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return runner


def main() -> None:
    import asyncio

    port = int(sys.argv[1])

    async def serve() -> None:
        recorder = Recorder()
        recorder.seen = _Discard()  # a long benchmark must not grow the agent's memory
        await start(agent_app(recorder), port)
        await asyncio.Event().wait()

    asyncio.run(serve())


class _Discard(list):
    def append(self, _item: Any) -> None:
        pass


class BackgroundApps:
    """aiohttp apps served from a thread with its own event loop (tests stay synchronous)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runners: list[web.AppRunner] = []

    def serve(self, app: web.Application, port: int | None = None) -> int:
        runner = asyncio.run_coroutine_threadsafe(start(app, port or 0), self.loop).result(10)
        self.runners.append(runner)
        return bound_port(runner.addresses, port or 0)

    def close(self) -> None:
        for runner in self.runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


if __name__ == "__main__":
    main()
