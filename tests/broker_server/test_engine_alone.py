"""EngineTransport on its own: built from EngineLimits, metrics, a token registry, a byte budget
and a socket table of our own (real ClientSockets in a dict, identified ones in a real pool), no
BrokerServer. Its handler is served by a bare aiohttp app on 127.0.0.1 and spoken to over real
HTTP long-polling and websockets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from broker_server.budget import ByteBudget
from broker_server.client_socket import ClientSocket
from broker_server.engine_transport import EngineLimits, EngineTransport, SocketOpening
from broker_server.metrics import ServerMetrics
from broker_server.pool import ConnectionPool
from broker_server.tokens import TokenRegistry
from deploy.processes import free_port
from shared.broker_protocol import BrokerConnection
from shared.engineio import OpenHandshake, PacketType, decode_payload
from tests.broker_server.lone_socket import TOKEN, lone_socket
from tests.broker_server.peer import identify_payload, polling_get, polling_post

LIMITS = EngineLimits(max_connections_per_token=10, max_message=1 << 20)


async def no_forward(token: str, request: Any) -> dict[str, Any]:
    raise AssertionError("the transport never makes a socket call the upstream")


class Sockets:
    """A :class:`broker_server.engine_transport.SocketTable`: every socket opened, by sid."""

    def __init__(self) -> None:
        self.pool = ConnectionPool(60.0)
        self.by_sid: dict[str, ClientSocket] = {}

    def find(self, sid: str) -> ClientSocket | None:
        return self.by_sid.get(sid)

    def open_sessions(self, token: str) -> int:
        return sum(1 for s in self.by_sid.values() if s.token == token and not s.closed)

    def new_session(self, opening: SocketOpening) -> ClientSocket:
        assert opening.token == TOKEN
        socket = lone_socket(
            forward=no_forward,
            identified=self.pool.register,
            closed=self.pool.remove,
            role_hint=opening.role_hint,
            sid=uuid.uuid4().hex,
            eio=opening.eio,
            transport=opening.transport,
            account=opening.account,
        )
        self.by_sid[socket.sid] = socket
        self.pool.add_handshaking(socket)
        return socket


@dataclass
class Engine:
    url: str
    sockets: Sockets
    metrics: ServerMetrics

    def counted(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


@pytest.fixture
async def engine() -> AsyncIterator[Any]:
    servers: list[TestServer] = []
    tables: list[Sockets] = []

    async def build(limits: EngineLimits = LIMITS, budget: ByteBudget | None = None) -> Engine:
        budget = budget or ByteBudget(server=1 << 22, token=1 << 22, connection=1 << 22)
        metrics, sockets = ServerMetrics(), Sockets()
        transport = EngineTransport(
            limits=limits,
            metrics=metrics,
            tokens=TokenRegistry([TOKEN]),
            budget=budget,
            sockets=sockets,
        )
        app = web.Application()
        app.router.add_route("*", "/primus/{token}/", transport.handle)
        server = TestServer(app, host="127.0.0.1", port=free_port())
        await server.start_server()
        servers.append(server)
        tables.append(sockets)
        return Engine(f"http://127.0.0.1:{server.port}/primus", sockets, metrics)

    yield build
    for sockets in tables:
        for socket in list(sockets.by_sid.values()):
            await socket.close("test over", server_close=False)
    for server in servers:
        await server.close()


async def test_a_polling_handshake_opens_a_socket_whose_identify_reaches_the_pool(engine) -> None:
    setup = await engine()
    base = f"{setup.url}/{TOKEN}/?EIO=4&transport=polling&connection_role=secondary"
    async with aiohttp.ClientSession() as http:
        packets = await polling_get(http, base, 4)
        assert packets[0].type == PacketType.OPEN
        handshake = OpenHandshake.from_json(packets[0].data)
        assert handshake.upgrades == ["websocket"]
        socket = setup.sockets.find(handshake.sid)
        assert socket is not None
        assert (socket.transport, socket.eio, socket.role_hint) == ("polling", 4, "secondary")
        identify, _ = BrokerConnection("client").send_event("identify", identify_payload(TOKEN))
        assert await polling_post(http, f"{base}&sid={handshake.sid}", [identify], 4) == (200, "ok")
    assert setup.sockets.pool.select(TOKEN) is socket


async def test_a_direct_websocket_is_charged_to_the_given_budget(engine) -> None:
    budget = ByteBudget(server=1 << 22, token=1 << 22, connection=4096)
    setup = await engine(budget=budget)
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{setup.url}/{TOKEN}/?EIO=4&transport=websocket") as ws,
    ):
        [opened] = decode_payload(await ws.receive_str(), 4)
        assert isinstance(opened.data, str)
        assert OpenHandshake.from_json(opened.data).upgrades == []
        [socket] = setup.sockets.by_sid.values()
        assert socket.transport == "websocket"
        await ws.send_str("4" + "x" * 10000)
        async with asyncio.timeout(10):
            async for _ in ws:  # the server's identify, then the end of the socket
                pass
        assert ws.closed
    assert setup.counted("broker_server_refusals_total", scope="connection") == 1
    assert socket.closed


async def test_the_limit_of_sockets_per_token_comes_from_the_engine_limits(engine) -> None:
    setup = await engine(EngineLimits(max_connections_per_token=1, max_message=1 << 20))
    base = f"{setup.url}/{TOKEN}/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        await polling_get(http, base, 4)
        async with http.get(base) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "5"
            assert "limit 1" in (await resp.json())["message"]
    assert len(setup.sockets.by_sid) == 1
    assert setup.counted("broker_server_refusals_total", scope="connections") == 1


async def test_a_polling_payload_over_the_message_limit_is_413(engine) -> None:
    setup = await engine(EngineLimits(max_connections_per_token=10, max_message=2048))
    base = f"{setup.url}/{TOKEN}/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        packets = await polling_get(http, base, 4)
        sid = OpenHandshake.from_json(packets[0].data).sid
        status, text = await polling_post(http, f"{base}&sid={sid}", ["4" + "y" * 5000], 4)
    assert status == 413 and "exceeds the limit of 2048" in text
    assert setup.sockets.by_sid[sid].closed
    assert setup.counted("broker_server_protocol_faults_total", where="oversized") == 1


async def test_an_unknown_token_or_sid_is_refused_and_opens_nothing(engine) -> None:
    setup = await engine()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{setup.url}/not-a-known-token/?EIO=4&transport=polling") as resp:
            assert resp.status == 401
            assert "unknown broker token" in (await resp.json())["message"]
        async with http.get(f"{setup.url}/{TOKEN}/?EIO=4&transport=polling&sid=nope") as resp:
            assert resp.status == 400
            assert "Session ID unknown" in (await resp.json())["message"]
    assert setup.sockets.by_sid == {}
    assert setup.counted("broker_server_protocol_faults_total", where="unknown-token") == 1
