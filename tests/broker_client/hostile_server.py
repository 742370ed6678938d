"""A hostile broker server for tests: speaks the classic protocol through the project's own
server-side core over real websockets, and sends ``request`` events no well-behaved server (nor
the HTTP front of one) would: raw control characters, any header, any body.

``ask`` sends one event with an ack id and returns the client's ack payload
(``{"status", "headers", "body"}``), the answer the client would hand a real server.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from shared import broker_protocol as bp
from shared.engineio import OpenHandshake


class HostileServer:
    def __init__(self) -> None:
        self.port = 0  # known once serving
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.connected = threading.Event()
        self._sockets: list[tuple[ServerConnection, bp.BrokerConnection]] = []
        self._acks: dict[int, asyncio.Future[list[Any]]] = {}
        self._sids = itertools.count(1)
        self._stopping: asyncio.Event | None = None
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(self._main(),), daemon=True
        )
        self.thread.start()
        assert self.ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        async with serve(self._session, "127.0.0.1", 0, max_size=64 << 20) as server:
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()
            await self._stopping.wait()

    async def _session(self, ws: ServerConnection) -> None:
        conn = bp.BrokerConnection("server")
        handshake = OpenHandshake(
            sid=f"h{next(self._sids)}", upgrades=[], pingInterval=25000, pingTimeout=20000
        )
        await ws.send(conn.open(handshake))
        identify, _ = conn.send_event("identify", {"capabilities": []})
        await ws.send(identify)
        async for message in ws:
            for event in conn.receive(message):
                if isinstance(event, bp.ClientIdentified):
                    self._sockets.append((ws, conn))
                    self.connected.set()
                elif isinstance(event, bp.PrimusPing | bp.EnginePing):
                    await ws.send(conn.pong_for(event))
                elif isinstance(event, bp.AckReceived):
                    future = self._acks.pop(event.ack.ack_id, None)
                    if future is not None and not future.done():
                        future.set_result(list(event.ack.args))

    async def _ask(self, arg: dict[str, Any], seconds: float) -> dict[str, Any]:
        ws, conn = self._sockets[0]
        data, ack_id = conn.send_event("request", arg, want_ack=True)
        assert ack_id is not None
        future: asyncio.Future[list[Any]] = self.loop.create_future()
        self._acks[ack_id] = future
        await ws.send(data)
        args = await asyncio.wait_for(future, seconds)
        return dict(args[0])

    def ask(self, arg: dict[str, Any], timeout: float = 20) -> dict[str, Any]:
        """Send one ``request`` event and return the client's answer."""
        assert self.connected.wait(20), "the broker client never connected"
        return asyncio.run_coroutine_threadsafe(self._ask(arg, timeout), self.loop).result(
            timeout + 5
        )

    def close(self) -> None:
        assert self._stopping is not None
        self.loop.call_soon_threadsafe(self._stopping.set)
        self.thread.join(10)
