"""Relay on its own: built from RelayLimits, metrics, tokens, a client lookup, the pending
streams, a byte budget and the public rules, no BrokerServer. Its two handlers are served by a
bare aiohttp app on 127.0.0.1; the client end of a real ClientSocket answers from its outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from broker_server.budget import ByteBudget
from broker_server.client_socket import ClientSocket
from broker_server.metrics import ServerMetrics
from broker_server.pool import ConnectionPool, TokenState
from broker_server.relay import ClientLookup, Relay, RelayLimits
from broker_server.streams import StreamRegistry
from broker_server.tokens import TokenRegistry
from deploy.processes import free_port
from shared import broker_protocol as bp
from shared.accept_rules import AcceptRules, load_rules
from shared.broker_message import reply
from shared.response_stream import encode_head
from tests.broker_server.lone_socket import TOKEN, lone_socket
from tests.broker_server.peer import post_response_data

OTHER_TOKEN = "0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f"
LIMITS = RelayLimits(max_body=4096, request_timeout=10.0, stream_idle_timeout=10.0)


async def no_forward(token: str, request: Any) -> dict[str, Any]:
    raise AssertionError("the relay never makes the socket call the upstream")


def client_socket(pool: ConnectionPool, budget: ByteBudget) -> ClientSocket:
    socket = lone_socket(
        forward=no_forward, identified=pool.register, closed=pool.remove, budget=budget
    )
    pool.add_handshaking(socket)
    return socket


Answer = Callable[["Client", aiohttp.ClientSession, dict[str, Any], int | None], Awaitable[None]]


class Client:
    """The client end of one ClientSocket: identifies, then hands each ``request`` event the
    relay puts in the socket's outbox to ``answer``."""

    def __init__(self, socket: ClientSocket, base_url: str, answer: Answer) -> None:
        self.socket = socket
        self.base_url = base_url
        self.answer = answer
        self.conn = bp.BrokerConnection("client")
        self.requests: list[dict[str, Any]] = []

    async def identify(self, capabilities: list[str]) -> None:
        data, _ = self.conn.send_event(
            "identify",
            {"token": TOKEN, "metadata": {"version": "4.200.0", "capabilities": capabilities}},
        )
        await self.socket.handle(self.socket.conn.receive(data))

    async def run(self) -> None:
        async with aiohttp.ClientSession() as http:
            while not self.socket.closed:
                await self.socket.outbox_event.wait()
                for packet in self.socket.take_outbox():
                    for event in self.conn.receive(packet):
                        if isinstance(event, bp.EventReceived) and event.event.name == "request":
                            self.requests.append(event.event.args[0])
                            await self.answer(self, http, event.event.args[0], event.event.ack_id)

    async def ack(self, ack_id: int, answer: dict[str, Any]) -> None:
        await self.socket.handle(self.socket.conn.receive(self.conn.send_ack(ack_id, answer)))


async def echo(
    client: Client, http: aiohttp.ClientSession, request: dict[str, Any], ack_id: int | None
) -> None:
    """Answer with the method, URL and body, by ack or by stream as the relay asked."""
    text = f"{request['method']} {request['url']} {request.get('body', b'').decode()}"
    if ack_id is not None:
        await client.ack(ack_id, reply(200, {"content-type": "text/plain"}, text))
        return
    body = text.encode()
    head = encode_head(200, {"content-type": "text/plain", "content-length": str(len(body))})
    status = await post_response_data(
        http, client.base_url, TOKEN, request["streamingID"], head + body
    )
    assert status == 200


async def silent(
    client: Client, http: aiohttp.ClientSession, request: dict[str, Any], ack_id: int | None
) -> None:
    """Never answer."""


@dataclass
class Setup:
    url: str
    relay: Relay
    metrics: ServerMetrics
    pool: ConnectionPool
    budget: ByteBudget
    streams: StreamRegistry


Factory = Callable[..., Awaitable[Setup]]


@pytest.fixture
async def relay_app() -> AsyncIterator[Factory]:
    servers: list[TestServer] = []
    tasks: list[asyncio.Task[None]] = []
    sockets: list[ClientSocket] = []

    async def build(
        *,
        limits: RelayLimits = LIMITS,
        clients: ClientLookup | None = None,
        rules: AcceptRules | None = None,
        budget: ByteBudget | None = None,
        answer: Answer | None = None,
        capabilities: list[str] | None = None,
    ) -> Setup:
        pool = ConnectionPool(60.0)
        budget = budget or ByteBudget(server=1 << 20, token=1 << 20, connection=1 << 20)
        metrics, streams = ServerMetrics(), StreamRegistry(3600)
        relay = Relay(
            limits=limits,
            metrics=metrics,
            tokens=TokenRegistry([TOKEN, OTHER_TOKEN]),
            clients=clients or pool,
            streams=streams,
            budget=budget,
            rules=rules,
        )
        app = web.Application()
        app.router.add_route("*", "/broker/{token}/{path:.*}", relay.handle_broker)
        app.router.add_post("/response-data/{token}/{stream_id}", relay.handle_response_data)
        server = TestServer(app, host="127.0.0.1", port=free_port())
        await server.start_server()
        servers.append(server)
        setup = Setup(f"http://127.0.0.1:{server.port}", relay, metrics, pool, budget, streams)
        if answer is not None:
            socket = client_socket(pool, budget)
            sockets.append(socket)
            client = Client(socket, setup.url, answer)
            await client.identify(capabilities if capabilities is not None else [])
            tasks.append(asyncio.create_task(client.run()))
        return setup

    yield build
    for socket in sockets:
        await socket.close("test over")
    for task in tasks:
        task.cancel()
    for server in servers:
        await server.close()


def counted(setup: Setup, mode: str, status: int) -> float | None:
    return setup.metrics.registry.get_sample_value(
        "broker_server_requests_total",
        {"direction": "to_client", "mode": mode, "status": str(status)},
    )


async def test_a_caller_is_answered_by_ack_from_the_socket_the_lookup_chose(relay_app) -> None:
    setup = await relay_app(answer=echo)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{setup.url}/broker/{TOKEN}/scan?x=1", data=b"abc") as resp:
            assert resp.status == 200
            assert await resp.text() == "POST /scan?x=1 abc"
    assert counted(setup, "ack", 200) == 1
    assert setup.budget.total == 0  # the caller's body was given back


async def test_a_caller_is_answered_through_response_data_when_the_client_streams(
    relay_app,
) -> None:
    setup = await relay_app(answer=echo, capabilities=["post-streams"])
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{setup.url}/broker/{TOKEN}/ctx/c1/list") as resp:
            assert resp.status == 200
            assert resp.content_length == len("GET /list ")
            assert await resp.text() == "GET /list "
    assert counted(setup, "stream", 200) == 1
    assert len(setup.streams) == 0  # the streaming id was used once and dropped


class NotReady:
    """A client lookup of our own: sockets are there but none sent version/capabilities."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def select(self, token: str) -> ClientSocket | None:
        self.asked.append(token)
        return None

    def state(self, token: str) -> TokenState:
        return "not-ready"


async def test_the_relay_asks_its_client_lookup_and_passes_on_its_state(relay_app) -> None:
    lookup = NotReady()
    setup = await relay_app(clients=lookup)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{setup.url}/broker/{TOKEN.upper()}/list") as resp:
            assert resp.status == 400
            assert resp.headers["x-broker-failure"] == "bad-request"
    assert lookup.asked == [TOKEN]  # the canonical token from the registry


async def test_max_body_comes_from_the_limits(relay_app) -> None:
    limits = RelayLimits(max_body=1024, request_timeout=10.0, stream_idle_timeout=10.0)
    setup = await relay_app(limits=limits, answer=echo)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{setup.url}/broker/{TOKEN}/scan", data=b"x" * 1025) as resp:
            assert resp.status == 413
            assert "1024" in (await resp.json())["message"]
        async with http.post(f"{setup.url}/broker/{TOKEN}/scan", data=b"x" * 1024) as resp:
            assert resp.status == 200


async def test_a_body_over_the_tokens_budget_is_refused_with_429(relay_app) -> None:
    budget = ByteBudget(server=1 << 20, token=2048, connection=1 << 20)
    setup = await relay_app(budget=budget, answer=echo)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{setup.url}/broker/{TOKEN}/scan", data=b"x" * 3000) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "1"
            assert "per-token limit of 2048" in (await resp.json())["message"]
    assert budget.total == 0
    assert (
        setup.metrics.registry.get_sample_value("broker_server_refusals_total", {"scope": "token"})
        == 1
    )


async def test_a_path_no_public_rule_allows_is_blocked_before_any_socket_is_chosen(
    relay_app,
) -> None:
    lookup = NotReady()
    rules = load_rules({"public": [{"method": "GET", "path": "/list/*"}]})
    setup = await relay_app(clients=lookup, rules=rules)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{setup.url}/broker/{TOKEN}/admin") as resp:
            assert resp.status == 401
            assert (await resp.json())["code"] == "FILTER_BLOCKED"
    assert lookup.asked == []


@pytest.mark.parametrize("capabilities", [[], ["post-streams"]], ids=["ack", "stream"])
async def test_the_request_timeout_comes_from_the_limits(relay_app, capabilities) -> None:
    limits = RelayLimits(max_body=4096, request_timeout=0.3, stream_idle_timeout=10.0)
    setup = await relay_app(limits=limits, answer=silent, capabilities=capabilities)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{setup.url}/broker/{TOKEN}/list") as resp:
            assert resp.status == 504
            assert resp.headers["x-broker-failure"] == "timeout"
            assert "0.3s" in (await resp.json())["message"]
    assert len(setup.streams) == 0


async def test_an_answer_posted_with_another_tokens_id_is_refused(relay_app) -> None:
    posted: list[int] = []

    async def wrong_token(
        client: Client, http: aiohttp.ClientSession, request: dict[str, Any], ack_id: int | None
    ) -> None:
        frame = encode_head(200, {}) + b"stolen"
        posted.append(
            await post_response_data(
                http, client.base_url, OTHER_TOKEN, request["streamingID"], frame
            )
        )

    limits = RelayLimits(max_body=4096, request_timeout=0.5, stream_idle_timeout=10.0)
    setup = await relay_app(limits=limits, answer=wrong_token, capabilities=["post-streams"])
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{setup.url}/broker/{TOKEN}/list") as resp:
            assert resp.status == 504
    assert posted == [403]
    assert (
        setup.metrics.registry.get_sample_value(
            "broker_server_protocol_faults_total", {"where": "response-data"}
        )
        == 1
    )
