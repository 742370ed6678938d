"""``/broker/<token>/*``, ``/response-data``, client callbacks, status and metrics, driven by
scripted peers against our server in-process."""

from __future__ import annotations

import asyncio
import struct

import aiohttp
import pytest

from shared.broker_protocol import AckReceived, EventReceived, ServerIdentified
from shared.response_stream import CONTENT_TYPE, encode_head
from tests.broker_server.conftest import OTHER_TOKEN, TOKEN, upstream_accept
from tests.broker_server.peer import WsPeer, answer_by_stream, echo_handler
from tests.support.eventually import eventually_async


async def ready_peer(
    url: str, token: str = TOKEN, role: str = "primary", client_id: str = "peer-1"
) -> WsPeer:
    peer = await WsPeer(url, token, role=role).connect()
    peer.handler = echo_handler
    await peer.identify(client_id=client_id)
    await peer.wait_for(ServerIdentified)
    return peer


async def wait_ready(srv, token: str = TOKEN) -> None:
    def ready() -> None:
        assert srv.server.pool.select(token) is not None, "client never became ready"

    await eventually_async(ready)


async def wait_chosen(srv, client_id: str) -> None:
    """Until the pool picks the client ``client_id`` for TOKEN."""

    def chosen() -> None:
        picked = srv.server.pool.select(TOKEN)
        assert picked is not None and picked.identity.metadata.client_id == client_id, picked

    await eventually_async(chosen)


async def test_stream_and_ack_modes(make_server):
    srv = await make_server()
    peer = await ready_peer(srv.url)
    await wait_ready(srv)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}/broker/{TOKEN}/list/repo?page=2") as resp:
            assert resp.status == 200
            assert await resp.text() == "primary:GET /list/repo?page=2"
        async with http.get(
            f"{srv.url}/broker/{TOKEN}/list", headers={"x-broker-ws-response": "1"}
        ) as resp:
            assert resp.status == 200
            assert await resp.text() == "primary:GET /list"
    requests = [
        e.event.args[0]
        for e in peer.events
        if isinstance(e, EventReceived) and e.event.name == "request"
    ]
    streamed, acked = requests
    assert streamed["streamingID"] and acked["streamingID"] == ""
    assert streamed["headers"]["snyk-request-id"] == streamed["requestId"]
    await peer.close()


async def test_request_body_travels_as_binary(make_server):
    srv = await make_server()
    peer = await ready_peer(srv.url)
    await wait_ready(srv)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{srv.url}/broker/{TOKEN}/scan", data=b'{"image":"x"}') as resp:
            assert resp.status == 200
    (request,) = [
        e.event.args[0]
        for e in peer.events
        if isinstance(e, EventReceived) and e.event.name == "request"
    ]
    assert request["body"] == b'{"image":"x"}'
    assert request["method"] == "POST"
    await peer.close()


async def test_large_streamed_answer_is_relayed_in_chunks(make_server):
    srv = await make_server()
    peer = await WsPeer(srv.url, TOKEN).connect()
    payload = bytes(range(256)) * 40000  # ~10 MB

    async def big(peer: WsPeer, received: EventReceived) -> None:
        await answer_by_stream(
            peer, received, body=payload, headers={"content-type": "application/octet-stream"}
        )

    peer.handler = big
    await peer.identify()
    await wait_ready(srv)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{srv.url}/broker/{TOKEN}/list/big") as resp,
    ):
        assert resp.status == 200
        assert resp.headers["content-type"] == "application/octet-stream"
        assert await resp.read() == payload
    await peer.close()


async def test_no_client_is_404_no_connection(make_server):
    srv = await make_server()
    async with aiohttp.ClientSession() as http:
        for token in (TOKEN, "not-a-known-token"):
            async with http.get(f"{srv.url}/broker/{token}/list") as resp:
                assert resp.status == 404
                assert resp.headers["x-broker-failure"] == "no-connection"


async def test_handshaking_client_gives_503_retry_after(make_server):
    srv = await make_server()
    peer = await WsPeer(srv.url, TOKEN).connect()  # open, never identifies
    async with aiohttp.ClientSession() as http, http.get(f"{srv.url}/broker/{TOKEN}/list") as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "1"
        assert resp.headers["x-broker-failure"] == "connection-not-ready"
    await peer.close()


async def test_reconnect_grace_then_404(make_server):
    srv = await make_server(RECONNECT_GRACE_MS="1500")
    peer = await ready_peer(srv.url)
    await wait_ready(srv)
    await peer.close()
    await eventually_async(lambda: srv.server.pool.select(TOKEN) is None)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}/broker/{TOKEN}/list") as resp:
            assert resp.status == 503 and resp.headers["Retry-After"] == "1"

        async def gone() -> None:  # once the 1.5 s grace is over
            async with http.get(f"{srv.url}/broker/{TOKEN}/list") as resp:
                assert resp.status == 404

        await eventually_async(gone)


async def test_newest_ready_client_serves_and_other_takes_over(make_server):
    srv = await make_server()
    older = await ready_peer(srv.url, role="primary", client_id="old")
    await wait_ready(srv)
    newer = await ready_peer(srv.url, role="primary", client_id="new")
    await wait_chosen(srv, "new")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}/broker/{TOKEN}/list") as resp:
            assert resp.status == 200
        assert any(isinstance(e, EventReceived) and e.event.name == "request" for e in newer.events)
        assert not any(
            isinstance(e, EventReceived) and e.event.name == "request" for e in older.events
        )
        await newer.close()
        await wait_chosen(srv, "old")
        async with http.get(f"{srv.url}/broker/{TOKEN}/list") as resp:
            assert resp.status == 200
        assert any(isinstance(e, EventReceived) and e.event.name == "request" for e in older.events)
    await older.close()


async def test_broken_response_frame_gives_clear_errors(make_server):
    srv = await make_server()
    peer = await WsPeer(srv.url, TOKEN).connect()
    post_status: list[int] = []

    async def broken(peer: WsPeer, received: EventReceived) -> None:
        # length prefix promises 500 bytes of head, body has 10
        post_status.append(
            await answer_by_stream(peer, received, frame=struct.pack("<I", 500) + b'{"status":2')
        )

    peer.handler = broken
    await peer.identify()
    await wait_ready(srv)
    async with aiohttp.ClientSession() as http, http.get(f"{srv.url}/broker/{TOKEN}/list") as resp:
        assert resp.status == 502
        body = await resp.json()
        assert "head length 500 is larger than" in body["message"]
    assert post_status == [400]
    # the socket itself is unaffected
    peer.handler = echo_handler
    async with aiohttp.ClientSession() as http, http.get(f"{srv.url}/broker/{TOKEN}/list") as resp:
        assert resp.status == 200
    await peer.close()


async def test_response_data_refusals(make_server):
    srv = await make_server(CACHE_EXPIRY="1")
    peer = await WsPeer(srv.url, TOKEN).connect()
    captured: list[EventReceived] = []
    arrived = asyncio.Event()

    async def hold(peer: WsPeer, received: EventReceived) -> None:
        captured.append(received)
        arrived.set()

    peer.handler = hold
    await peer.identify()
    await wait_ready(srv)
    async with aiohttp.ClientSession() as http:
        caller = asyncio.create_task(http.get(f"{srv.url}/broker/{TOKEN}/list"))
        await asyncio.wait_for(arrived.wait(), 5)
        stream_id = captured[0].event.args[0]["streamingID"]
        async with http.post(
            f"{srv.url}/response-data/{OTHER_TOKEN}/{stream_id}", data=b"x"
        ) as resp:
            assert resp.status == 403
            assert "another broker token" in (await resp.json())["message"]
        async with http.post(
            f"{srv.url}/response-data/not-a-known-token/{stream_id}", data=b"x"
        ) as resp:
            assert resp.status == 401
        async with http.post(f"{srv.url}/response-data/{TOKEN}/no-such-id", data=b"x") as resp:
            assert resp.status == 404
            assert "unknown or expired" in (await resp.json())["message"]
        # waits out the stream's expiry: probing earlier would feed the live stream
        await asyncio.sleep(1.2)
        async with http.post(f"{srv.url}/response-data/{TOKEN}/{stream_id}", data=b"x") as resp:
            assert resp.status == 404
        resp = await caller
        assert resp.status == 502
        assert "expired" in (await resp.json())["message"]
        resp.release()
    await peer.close()


async def test_ack_timeout_and_late_ack(make_server):
    srv = await make_server(BROKER_WEBSERVER_REQUEST_TIMEOUT="300")
    peer = await WsPeer(srv.url, TOKEN).connect()
    captured: list[EventReceived] = []

    async def hold(peer: WsPeer, received: EventReceived) -> None:
        captured.append(received)

    peer.handler = hold
    await peer.identify()
    await wait_ready(srv)
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{srv.url}/broker/{TOKEN}/list", headers={"x-broker-ws-response": "1"}
        ) as resp:
            assert resp.status == 504
    # answering after the timeout is an ack for an id the server no longer waits for
    await peer.send_raw(
        peer.conn.send_ack(captured[0].event.ack_id, {"status": 200, "body": "late"})
    )
    note = await peer.wait_for(EventReceived, lambda e: e.event.name == "notification")
    assert "ack for unknown id" in note.event.args[0]["message"]
    await peer.close()


async def test_client_callback_goes_upstream_with_broker_token(make_server, backends):
    srv = await make_server(accept=upstream_accept(backends.upstream_url))
    peer = await ready_peer(srv.url)
    await wait_ready(srv)
    before = len(backends.upstream.seen)
    request = {
        "url": "/api/v2/import/result",
        "method": "POST",
        "headers": {"content-type": "application/json", "x-broker-token": "spoofed"},
        "body": b'{"result":1}',
        "streamingID": "",
        "requestId": "r1",
    }
    ack_id = await peer.send_event("request", request, want_ack=True)
    ack = await peer.wait_for(AckReceived, lambda e: e.ack.ack_id == ack_id)
    reply = ack.ack.args[0]
    assert reply["status"] == 201
    seen = backends.upstream.seen[before]
    assert seen["path_qs"] == "/api/v2/import/result"
    assert seen["body"] == '{"result":1}'
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["x-broker-token"] == TOKEN

    blocked = dict(request, url="/api/v3/not-allowed")
    ack_id = await peer.send_event("request", blocked, want_ack=True)
    ack = await peer.wait_for(AckReceived, lambda e: e.ack.ack_id == ack_id)
    assert ack.ack.args[0]["status"] == 401
    assert "FILTER_BLOCKED" in ack.ack.args[0]["body"]
    assert len(backends.upstream.seen) == before + 1
    await peer.close()


async def test_server_public_rules_block(make_server, backends):
    accept = upstream_accept(backends.upstream_url)
    accept["public"] = [{"method": "GET", "path": "/list/*"}]
    srv = await make_server(accept=accept)
    peer = await ready_peer(srv.url)
    await wait_ready(srv)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}/broker/{TOKEN}/scan") as resp:
            assert resp.status == 401
            assert (await resp.json())["code"] == "FILTER_BLOCKED"
        async with http.get(f"{srv.url}/broker/{TOKEN}/list/a") as resp:
            assert resp.status == 200
    await peer.close()


async def test_metrics_and_healthcheck(make_server):
    srv = await make_server()
    peer = await ready_peer(srv.url)
    await wait_ready(srv)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}/broker/{TOKEN}/list") as resp:
            assert resp.status == 200
        async with http.get(f"{srv.url}/healthcheck") as resp:
            assert (await resp.json())["ok"] is True
        async with http.get(f"{srv.url}/metrics") as resp:
            text = await resp.text()
    assert 'broker_server_connections{state="identified",transport="websocket"} 1.0' in text
    assert (
        'broker_server_requests_total{direction="to_client",mode="stream",status="200"} 1.0' in text
    )
    assert "broker_server_request_duration_seconds_bucket" in text
    assert 'broker_server_bytes_total{direction="to_client",kind="response"}' in text
    await peer.close()


async def test_declared_length_is_passed_on_and_a_short_body_cuts_the_connection(make_server):
    srv = await make_server()
    peer = await WsPeer(srv.url, TOKEN).connect()

    async def answer(peer: WsPeer, received: EventReceived) -> None:
        short = received.event.args[0]["url"].endswith("short")
        await answer_by_stream(
            peer, received, body=b"x" * 50, headers={"content-length": "100" if short else "50"}
        )

    peer.handler = answer
    await peer.identify()
    await wait_ready(srv)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}/broker/{TOKEN}/list/exact") as resp:
            assert resp.headers["content-length"] == "50"
            assert "transfer-encoding" not in resp.headers
            assert await resp.read() == b"x" * 50
        async with http.get(f"{srv.url}/broker/{TOKEN}/list/short") as resp:
            assert resp.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
    await peer.close()


async def test_slow_caller_slows_the_client_post_down(make_server):
    """Back-pressure: the server writes each chunk to the caller before reading the next one."""
    srv = await make_server()
    peer = await WsPeer(srv.url, TOKEN).connect()
    block = b"z" * (1 << 20)
    total_blocks = 48
    produced = 0
    post_done = asyncio.Event()

    async def body():
        nonlocal produced
        yield encode_head(200, {"content-type": "application/octet-stream"})
        for _ in range(total_blocks):
            produced += 1
            yield block

    async def answer(peer: WsPeer, received: EventReceived) -> None:
        stream_id = received.event.args[0]["streamingID"]
        assert peer.http is not None
        async with peer.http.post(
            f"{peer.base_url}/response-data/{TOKEN}/{stream_id}",
            data=body(),
            headers={"content-type": CONTENT_TYPE},
        ) as resp:
            await resp.read()
        post_done.set()

    peer.handler = answer
    await peer.identify()
    await wait_ready(srv)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{srv.url}/broker/{TOKEN}/list/big") as resp,
    ):
        first = await resp.content.readexactly(1 << 20)
        await asyncio.sleep(0.5)  # a window in which production must NOT run ahead
        # socket and transport buffers hold a few MB; the rest must still be unproduced
        assert produced < total_blocks - 16, produced
        assert not post_done.is_set()
        rest = await resp.read()
    assert len(first) + len(rest) == total_blocks << 20
    await asyncio.wait_for(post_done.wait(), 5)
    await peer.close()


async def test_upstream_url_with_default_rules_forwards_callbacks(make_server, backends):
    srv = await make_server(UPSTREAM_URL=backends.upstream_url)
    peer = await ready_peer(srv.url)
    await wait_ready(srv)
    before = len(backends.upstream.seen)
    request = {"url": "/api/v2/import/done", "method": "POST", "headers": {}, "body": b"{}"}
    ack_id = await peer.send_event("request", request, want_ack=True)
    ack = await peer.wait_for(AckReceived, lambda e: e.ack.ack_id == ack_id)
    assert ack.ack.args[0]["status"] == 201
    assert backends.upstream.seen[before]["path_qs"] == "/api/v2/import/done"
    await peer.close()


async def test_polling_only_client_serves_requests(make_server):
    """A client that never upgrades gets requests in poll answers and acks by POST."""
    from shared.broker_protocol import BrokerConnection
    from shared.engineio import OpenHandshake, encode_packet
    from tests.broker_server.peer import identify_payload, polling_get, polling_post

    srv = await make_server()
    base = f"{srv.url}/primus/{TOKEN}/?EIO=4&transport=polling&b64=1"
    conn = BrokerConnection("client")
    async with aiohttp.ClientSession() as http:
        packets = await polling_get(http, base, 4)
        sid = OpenHandshake.from_json(packets[0].data).sid
        url = f"{base}&sid={sid}"
        identify, _ = conn.send_event("identify", identify_payload(TOKEN))
        assert (await polling_post(http, url, [identify], 4))[0] == 200
        await wait_ready(srv)
        caller = asyncio.create_task(
            http.get(f"{srv.url}/broker/{TOKEN}/list", headers={"x-broker-ws-response": "1"})
        )
        request = None
        for _ in range(5):
            for packet in await polling_get(http, url, 4):
                for event in conn.receive(encode_packet(packet)):
                    if isinstance(event, EventReceived) and event.event.name == "request":
                        request = event
            if request is not None:
                break
        assert request is not None
        ack = conn.send_ack(
            request.event.ack_id, {"status": 200, "headers": {}, "body": "via polling"}
        )
        assert (await polling_post(http, url, [ack], 4))[0] == 200
        resp = await asyncio.wait_for(caller, 5)
        assert resp.status == 200 and await resp.text() == "via polling"
        resp.release()


async def test_polling_client_gone_mid_poll_is_dropped(make_server):
    from shared.broker_protocol import BrokerConnection
    from shared.engineio import OpenHandshake
    from tests.broker_server.peer import identify_payload, polling_get, polling_post

    srv = await make_server()
    base = f"{srv.url}/primus/{TOKEN}/?EIO=4&transport=polling&b64=1"
    conn = BrokerConnection("client")
    async with aiohttp.ClientSession() as http:
        sid = OpenHandshake.from_json((await polling_get(http, base, 4))[0].data).sid
        identify, _ = conn.send_event("identify", identify_payload(TOKEN))
        await polling_post(http, f"{base}&sid={sid}", [identify], 4)
        await wait_ready(srv)
    # a poll left pending by a client that then disappears
    doomed = aiohttp.ClientSession()
    pending = asyncio.create_task(polling_get(doomed, f"{base}&sid={sid}", 4))
    await asyncio.sleep(0.2)  # the poll reaches the server (nothing to observe it by) ...
    pending.cancel()  # ... and its client vanishes
    await doomed.close()
    await eventually_async(lambda: srv.server.pool.select(TOKEN) is None, timeout=3)


async def test_get_is_retried_on_the_other_client_when_the_chosen_one_vanishes(make_server):
    srv = await make_server()
    older = await ready_peer(srv.url, role="primary", client_id="old")
    await wait_ready(srv)
    newer = await WsPeer(srv.url, TOKEN, role="primary").connect()

    async def vanish(peer: WsPeer, received: EventReceived) -> None:
        await peer.close()  # takes the request, never answers

    newer.handler = vanish
    await newer.identify(client_id="new")
    await wait_chosen(srv, "new")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}/broker/{TOKEN}/list/x") as resp:
            assert resp.status == 200
            assert await resp.text() == "primary:GET /list/x"
    await older.close()


async def test_post_is_not_retried_when_the_client_vanishes(make_server):
    srv = await make_server()
    older = await ready_peer(srv.url, role="primary", client_id="old")
    await wait_ready(srv)
    newer = await WsPeer(srv.url, TOKEN, role="primary").connect()

    async def vanish(peer: WsPeer, received: EventReceived) -> None:
        await peer.close()

    newer.handler = vanish
    await newer.identify(client_id="new")
    await wait_chosen(srv, "new")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{srv.url}/broker/{TOKEN}/scan", data=b"{}") as resp:
            assert resp.status == 502
            assert resp.headers["x-broker-failure"] == "client-disconnected"
    assert not any(isinstance(e, EventReceived) and e.event.name == "request" for e in older.events)
    await older.close()


async def test_large_bodies_arrive_whole(make_server):
    """A /broker body and a polling payload that span many TCP reads are read completely."""
    from shared.broker_protocol import BrokerConnection
    from shared.engineio import OpenHandshake
    from tests.broker_server.peer import identify_payload, polling_get, polling_post

    srv = await make_server()
    peer = await ready_peer(srv.url)
    await wait_ready(srv)
    body = bytes(range(256)) * 8192  # 2 MiB

    async def chunks():
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]
            await asyncio.sleep(0)

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{srv.url}/broker/{TOKEN}/scan", data=chunks()) as resp:
            assert resp.status == 200
        (request,) = [
            e.event.args[0]
            for e in peer.events
            if isinstance(e, EventReceived) and e.event.name == "request"
        ]
        assert request["body"] == body

        base = f"{srv.url}/primus/{OTHER_TOKEN}/?EIO=4&transport=polling&b64=1"
        sid = OpenHandshake.from_json((await polling_get(http, base, 4))[0].data).sid
        conn = BrokerConnection("client")
        big = identify_payload(OTHER_TOKEN)
        big["metadata"]["filters"]["private"] = [
            {"method": "GET", "path": f"/p{i}/*"} for i in range(20000)
        ]
        identify, _ = conn.send_event("identify", big)
        assert len(identify) > 500_000
        assert await polling_post(http, f"{base}&sid={sid}", [identify], 4) == (200, "ok")
        await wait_ready(srv, OTHER_TOKEN)
        assert (
            len(srv.server.pool.select(OTHER_TOKEN).identity.metadata.filters["private"]) == 20000
        )
    await peer.close()


async def test_large_upstream_answer_comes_back_whole_and_oversized_is_refused(make_server):
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    big = "r" * (6 << 20)

    async def answer(request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["size"])
        response = web.StreamResponse(headers={"content-type": "text/plain"})
        await response.prepare(request)
        for start in range(0, size, 65536):
            await response.write(big[start : min(start + 65536, size)].encode())
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/api/v2/size/{size}", answer)
    upstream = TestServer(app, host="127.0.0.1")
    await upstream.start_server()
    try:
        srv = await make_server(
            accept=upstream_accept(f"http://127.0.0.1:{upstream.port}"),
            SOCKET_MAX_RESPONSE_LENGTH=str(4 << 20),
        )
        peer = await ready_peer(srv.url)
        await wait_ready(srv)
        for size, status in ((3 << 20, 200), (5 << 20, 502)):
            request = {"url": f"/api/v2/size/{size}", "method": "POST", "headers": {}, "body": b""}
            ack_id = await peer.send_event("request", request, want_ack=True)
            ack = await peer.wait_for(AckReceived, lambda e, i=ack_id: e.ack.ack_id == i)
            reply = ack.ack.args[0]
            assert reply["status"] == status
            if status == 200:
                assert reply["body"] == big[:size]
            else:
                assert "BODY_TOO_LARGE" in reply["body"]
        await peer.close()
    finally:
        await upstream.close()


async def test_stream_timeout_gives_504_and_the_late_answer_404(make_server):
    srv = await make_server(BROKER_WEBSERVER_REQUEST_TIMEOUT="300")
    peer = await WsPeer(srv.url, TOKEN).connect()
    held: list[EventReceived] = []
    arrived = asyncio.Event()

    async def hold(peer: WsPeer, received: EventReceived) -> None:
        held.append(received)
        arrived.set()

    peer.handler = hold
    await peer.identify()
    await wait_ready(srv)
    async with aiohttp.ClientSession() as http, http.get(f"{srv.url}/broker/{TOKEN}/list") as resp:
        assert resp.status == 504
        assert "no answer within" in (await resp.json())["message"]
    await asyncio.wait_for(arrived.wait(), 5)
    assert await answer_by_stream(peer, held[0], body=b"late") == 404
    await peer.close()


async def test_same_client_id_and_role_replaces_the_old_entry(make_server):
    srv = await make_server()
    first = await ready_peer(srv.url, role="primary", client_id="same")
    await wait_ready(srv)
    second = await ready_peer(srv.url, role="primary", client_id="same")
    third = await ready_peer(srv.url, role="secondary", client_id="same")
    await eventually_async(lambda: len(srv.server.pool.sessions(TOKEN)) == 2)
    entries = srv.server.pool.sessions(TOKEN)
    assert [s.role for s in entries] == ["secondary", "primary"]
    assert all(s.identity.metadata.client_id == "same" for s in entries)
    # the replaced socket is still open but no longer receives traffic
    assert not first.closed
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}/connection-status/{TOKEN}") as resp:
            assert len((await resp.json())["clients"]) == 2
    for peer in (first, second, third):
        await peer.close()
