"""One token's load cannot take the server's memory (issue 16.6): connections per token and bytes
in flight per connection, per token and per server are bounded; past a limit the peer is refused
clearly (429 at the handshake, a 429/503 ack or HTTP answer with the reason, or close 1013 with
the reason) and the other tokens are still served. Driven by the hostile client in ``hostile.py``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from deploy.processes import refused_port
from shared.broker_protocol import AckReceived, BrokerConnection
from tests.broker_server.conftest import OTHER_TOKEN, TOKEN, start_our_server, upstream_accept
from tests.broker_server.hostile import (
    HostileSocket,
    callback_message,
    data_message,
    flood,
    text_frame,
)
from tests.broker_server.http_calls import call, call_json
from tests.broker_server.test_relay import ready_peer, wait_ready
from tests.support.eventually import eventually_async

MIB = 1024 * 1024
#: small limits so a test moves megabytes, not gigabytes; a message may be 1 MiB
LIMITS = {
    "SOCKET_MAX_RESPONSE_LENGTH": str(MIB),
    "BROKER_SERVER_MAX_INFLIGHT_BYTES_PER_CONNECTION": str(2_200_000),
    "BROKER_SERVER_MAX_INFLIGHT_BYTES_PER_TOKEN": str(3_200_000),
    "BROKER_SERVER_MAX_INFLIGHT_BYTES": str(4_500_000),
}
CALLBACK = 300_000


@dataclass
class Upstream:
    url: str
    release: asyncio.Event
    held: list[int]


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """An upstream that holds every ``/api/v1/hang`` callback until ``release`` is set."""
    release = asyncio.Event()
    held: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if request.path.startswith("/api/v1/hang"):
            held.append(len(body))
            await release.wait()
        return web.json_response({"received": len(body)})

    app = web.Application(client_max_size=4 * MIB)
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield Upstream(f"http://127.0.0.1:{server.port}", release, held)
    release.set()
    await server.close()


async def holding(
    upstream: Upstream, sock: HostileSocket, callbacks: int, conn: BrokerConnection
) -> None:
    """Send ``callbacks`` callbacks of CALLBACK bytes on ``sock``, each then held upstream."""
    for _ in range(callbacks):
        expected = len(upstream.held) + 1
        await sock.send(text_frame(callback_message("/api/v1/hang", CALLBACK, conn)))
        await eventually_async(lambda: len(upstream.held) == expected)  # noqa: B023


async def test_connections_over_the_per_token_limit_get_429_and_other_tokens_connect(make_server):
    srv = await make_server(BROKER_SERVER_MAX_CONNECTIONS_PER_TOKEN="2")
    sockets = [HostileSocket(srv.url, TOKEN) for _ in range(3)]
    outcomes = [await sock.open() for sock in sockets]
    assert [o.status for o in outcomes] == [101, 101, 429]
    assert outcomes[2].refusal["message"] == (
        "too many connections for this broker token (limit 2)"
    )
    # the polling handshake is counted the same way
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}/primus/{TOKEN}/?EIO=4&transport=polling") as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "5"
    other = await ready_peer(srv.url, OTHER_TOKEN)
    await wait_ready(srv, OTHER_TOKEN)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}/broker/{OTHER_TOKEN}/still-served") as resp:
            assert resp.status == 200
    await other.close()
    for sock in sockets:
        sock.close()


async def test_a_callback_over_the_connection_budget_is_answered_429(make_server, upstream):
    srv = await make_server(accept=upstream_accept(upstream.url), **LIMITS)
    sock = HostileSocket(srv.url, TOKEN)
    await sock.open()
    conn = BrokerConnection("client", eio=4)
    # 6 x 300 kB held upstream: 1.8 MB of the connection's 2.2 MB
    await holding(upstream, sock, 6, conn)
    await sock.send(text_frame(callback_message("/api/v1/hang", CALLBACK, conn)))
    outcome = await sock.watch(acks=1)
    assert outcome.close_code is None
    (answer,) = outcome.answers
    assert answer["status"] == 429
    assert json.loads(answer["body"]) == {
        "code": "SERVER_BUSY",
        "message": "server busy: bytes in flight over the per-connection limit of 2200000",
    }
    await eventually_async(lambda: len(upstream.held) == 6)
    assert upstream.held == [CALLBACK] * 6
    # the held callbacks are answered once the upstream lets go, and their bytes given back
    upstream.release.set()
    outcome = await sock.watch(acks=7)
    assert [a["status"] for a in outcome.answers] == [429] + [200] * 6
    await eventually_async(lambda: srv.server.budget.total == 0)
    sock.close()


async def test_a_message_over_the_token_budget_closes_that_socket_and_others_are_served(
    make_server, upstream
):
    srv = await make_server(accept=upstream_accept(upstream.url), **LIMITS)
    other = await ready_peer(srv.url, OTHER_TOKEN)
    sockets = [HostileSocket(srv.url, TOKEN) for _ in range(4)]
    for sock in sockets:
        await sock.open()
    for sock in sockets[:3]:
        await holding(upstream, sock, 3, BrokerConnection("client", eio=4))
    assert srv.server.budget.held_by(TOKEN) == 9 * CALLBACK
    # 2.7 MB held by the token: a 1 MB message does not fit its 3.2 MB
    outcome = await sockets[3].send_and_watch(text_frame(data_message(MIB - 100)))
    assert outcome.close_code == 1013
    assert outcome.close_reason == (
        "server busy: bytes in flight over the per-token limit of 3200000"
    )
    # the other token's client still serves callers and its callbacks still go upstream
    await wait_ready(srv, OTHER_TOKEN)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}/broker/{OTHER_TOKEN}/still-served") as resp:
            assert resp.status == 200
            assert await resp.text() == "primary:GET /still-served"
    ack_id = await other.send_event(
        "request",
        {"url": "/api/v2/import/result", "method": "POST", "headers": {}, "body": "x" * 1000},
        want_ack=True,
    )
    answered = await other.wait_for(AckReceived, lambda e: e.ack.ack_id == ack_id)
    assert answered.ack.args[0]["status"] == 200
    # a socket refused for its token's load still holds nothing; the others' callbacks are held
    assert srv.server.budget.held_by(TOKEN) == 9 * CALLBACK
    upstream.release.set()
    for sock in sockets:
        sock.close()
    await eventually_async(lambda: srv.server.budget.total == 0)
    await other.close()


async def test_http_bodies_over_the_budget_get_429_or_503_with_the_reason(make_server, upstream):
    srv = await make_server(accept=upstream_accept(upstream.url), **LIMITS)
    other = await ready_peer(srv.url, OTHER_TOKEN)
    peer = await ready_peer(srv.url, TOKEN)
    hostile = [HostileSocket(srv.url, TOKEN) for _ in range(3)]
    for sock in hostile:
        await sock.open()
        await holding(upstream, sock, 3, BrokerConnection("client", eio=4))
    await wait_ready(srv, OTHER_TOKEN)
    async with aiohttp.ClientSession() as http:
        # the token holds 2.7 MB of its 3.2 MB: a caller's 1 MB body is its token's problem
        async with http.post(f"{srv.url}/broker/{TOKEN}/x", data=b"b" * MIB) as resp:
            assert resp.status == 429
            assert resp.headers["x-broker-failure"] == "server-busy"
            assert resp.headers["Retry-After"] == "1"
            assert (await resp.json())["message"] == (
                "server busy: bytes in flight over the per-token limit of 3200000"
            )
        # the other token fits its own limit but not the server's 4.5 MB: 503
        async with http.post(f"{srv.url}/broker/{OTHER_TOKEN}/x", data=b"b" * 2 * MIB) as resp:
            assert resp.status == 503
            assert (await resp.json())["message"] == (
                "server busy: bytes in flight over the per-server limit of 4500000"
            )
        # what fits is served
        async with http.post(f"{srv.url}/broker/{OTHER_TOKEN}/x", data=b"b" * 1000) as resp:
            assert resp.status == 200
        async with http.get(f"{srv.url}/metrics") as resp:
            metrics = await resp.text()
    assert 'broker_server_refusals_total{scope="token"} 1.0' in metrics
    assert 'broker_server_refusals_total{scope="server"} 1.0' in metrics
    assert "broker_server_inflight_bytes 2.7e+06" in metrics
    upstream.release.set()
    for sock in hostile:
        sock.close()
    await eventually_async(lambda: srv.server.budget.total == 0)
    await peer.close()
    await other.close()


async def test_a_polling_post_over_the_budget_is_refused_and_ends_that_session(
    make_server, upstream
):
    srv = await make_server(accept=upstream_accept(upstream.url), **LIMITS)
    hostile = [HostileSocket(srv.url, TOKEN) for _ in range(3)]
    for sock in hostile:
        await sock.open()
        await holding(upstream, sock, 3, BrokerConnection("client", eio=4))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}/primus/{TOKEN}/?EIO=4&transport=polling") as resp:
            sid = json.loads((await resp.text()).split("\x1e")[0][1:])["sid"]
        url = f"{srv.url}/primus/{TOKEN}/?EIO=4&transport=polling&sid={sid}"
        async with http.post(url, data=data_message(MIB - 100)) as resp:
            assert resp.status == 429
            assert "per-token limit of 3200000" in (await resp.json())["message"]
        async with http.get(url) as resp:
            assert await resp.text() == "1"  # the session has ended: engine.io close
    assert srv.server.budget.held_by(TOKEN) == 9 * CALLBACK
    upstream.release.set()
    for sock in hostile:
        sock.close()
    await eventually_async(lambda: srv.server.budget.total == 0)


@pytest.mark.timeout(180)
def test_flood_of_huge_messages_against_the_real_server_leaves_other_tokens_served(
    tmp_path: Path,
):
    """32 sockets of one token, 21 MB each, against ``broker-server`` with its default limits."""
    dead_upstream = f"http://127.0.0.1:{refused_port()}"
    server = start_our_server(
        tmp_path, accept=upstream_accept(dead_upstream), tokens=f"{TOKEN},{OTHER_TOKEN}"
    )
    try:
        outcomes, served = asyncio.run(_flood_while_serving(server.url))
        refused = [o for o in outcomes if o.status == 429]
        opened = [o for o in outcomes if o.status == 101]
        assert len(refused) == 22 and len(opened) == 10
        assert all(
            o.refusal["message"] == "too many connections for this broker token (limit 10)"
            for o in refused
        )
        closed = [o for o in opened if o.close_code is not None]
        answered = [o for o in opened if o.answers]
        # every socket that opened was either answered (502: the upstream is down) or refused
        # at the message's header, with the reason: 10 x 21 MB do not fit the token's 64 MiB
        assert len(closed) + len(answered) == 10
        assert closed, "no socket was refused at its message's header"
        assert all(o.close_code == 1013 for o in closed)
        assert all("bytes in flight over the per-token limit" in o.close_reason for o in closed)
        # answered: 502 (the upstream is down), or 429 when the token's budget had no room
        # left for the callback's body beside the messages still arriving
        assert all(o.answers[0]["status"] in (502, 429) for o in answered)
        assert served == [200, 200]
        # nothing is left charged, and the token may connect again
        _, _, metrics = call(f"{server.url}/metrics")
        assert b"\nbroker_server_inflight_bytes 0.0\n" in metrics
        assert call_json(f"{server.url}/healthcheck")[0] == 200
        again = asyncio.run(HostileSocket(server.url, TOKEN).open())
        assert again.status == 101
    finally:
        server.stop()


async def _flood_while_serving(url: str) -> tuple[list, list[int]]:
    other = await ready_peer(url, OTHER_TOKEN)
    frame = text_frame(callback_message("/api/v2/import/result", 21_000_000))
    served: list[int] = []
    async with aiohttp.ClientSession() as http:
        flooding = asyncio.create_task(flood(url, TOKEN, connections=32, frame=frame))
        for _ in range(2):
            async with http.get(f"{url}/broker/{OTHER_TOKEN}/during-the-flood") as resp:
                served.append(resp.status)
        outcomes = await flooding
    await other.close()
    return outcomes, served
