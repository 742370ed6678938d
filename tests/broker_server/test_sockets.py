"""Our server's socket endpoint driven by scripted peers: handshakes, identify, heartbeats,
polling + upgrade, engine.io v3, and bad input (issue 5, "What must be shown" item 5)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from shared.broker_protocol import (
    ClientIdentified,
    EnginePong,
    EventReceived,
    Noop,
    Opened,
    PrimusPong,
    ServerClose,
    ServerIdentified,
)
from shared.engineio import OpenHandshake, Packet, PacketType
from tests.broker_server.conftest import OTHER_TOKEN, TOKEN
from tests.broker_server.peer import (
    WsPeer,
    echo_handler,
    identify_payload,
    polling_get,
    polling_post,
)
from tests.support.eventually import eventually_async


async def connected(url: str, token: str = TOKEN, **kwargs) -> WsPeer:
    peer = await WsPeer(url, token, **kwargs).connect()
    peer.handler = echo_handler
    await peer.identify()
    return peer


async def test_direct_websocket_open_packet_and_server_identify(make_server):
    srv = await make_server()
    peer = await WsPeer(srv.url, TOKEN).connect()
    opened = await peer.wait_for(Opened)
    assert opened.handshake.upgrades == []
    assert opened.handshake.pingInterval == 25000
    assert opened.handshake.maxPayload == 22020096
    identified = await peer.wait_for(ServerIdentified)
    assert identified.capabilities == ["receive-post-streams"]
    await peer.close()


async def test_identify_lists_client_in_connection_status(make_server):
    srv = await make_server()
    peer = await connected(srv.url)
    async with aiohttp.ClientSession() as http:

        async def listed() -> dict:
            async with http.get(f"{srv.url}/connection-status/{TOKEN}") as resp:
                assert resp.status == 200
                return await resp.json()

        body = await eventually_async(listed)
        assert body["ok"] is True
        (client,) = body["clients"]
        assert client["version"] == "5.22.14"
        assert client["filters"]["private"] == [{"method": "GET", "path": "/*"}]
        assert client["role"] == "primary"
        async with http.get(f"{srv.url}/connections-status") as resp:
            (entry,) = await resp.json()
            assert TOKEN not in json.dumps(entry)
            assert entry["versions"] == ["5.22.14"] and entry["brokerClientIds"] == ["peer-1"]
        async with http.get(f"{srv.url}/connection-status/{OTHER_TOKEN}") as resp:
            assert resp.status == 404
            assert resp.headers["x-broker-failure"] == "no-connection"
    await peer.close()


async def test_primus_ping_is_answered(make_server):
    srv = await make_server()
    peer = await connected(srv.url)
    await peer.ping(1795565400866)
    pong = await peer.wait_for(PrimusPong)
    assert pong.value == "1795565400866"
    await peer.close()


async def test_server_pings_and_closes_silent_client(make_server):
    srv = await make_server(SOCKET_PING_INTERVAL="200", SOCKET_PING_TIMEOUT="300")
    lively = await connected(srv.url, role="primary")
    silent = await WsPeer(srv.url, TOKEN, role="secondary").connect()
    silent.auto_pong = False
    await silent.identify()
    await silent.wait_closed(within=5)
    assert not lively.closed
    assert srv.server.pool.select(TOKEN) is not None
    await lively.close()


async def test_primus_idle_timeout_closes_identified_client(make_server):
    srv = await make_server(
        SOCKET_PING_INTERVAL="200", SOCKET_PING_TIMEOUT="300", PRIMUS_TIMEOUT="500"
    )
    peer = await connected(srv.url)
    # engine.io pongs are answered automatically, but no Primus data follows
    await peer.wait_closed(within=5)


async def test_version_below_minimum_gets_error_notification_and_server_close(make_server):
    srv = await make_server()
    peer = await WsPeer(srv.url, TOKEN).connect()
    await peer.identify(version="4.99.0")
    await peer.wait_for(ServerClose)
    await peer.wait_closed()
    (note,) = [n for n in peer.notifications() if n["level"] == "error"]
    assert "4.99.0" in note["message"] and "4.100.0" in note["message"]
    assert srv.server.pool.select(TOKEN) is None


async def test_configurable_minimum_and_local_skips_check(make_server):
    srv = await make_server(MINIMAL_SUPPORTED_BROKER_VERSION="6.0.0")
    old = await WsPeer(srv.url, TOKEN, role="primary").connect()
    await old.identify(version="5.22.14")
    await old.wait_closed()
    local = await WsPeer(srv.url, TOKEN, role="secondary").connect()
    await local.identify(version="local")
    await local.wait_for(ServerIdentified)
    await eventually_async(lambda: srv.server.pool.select(TOKEN) is not None)
    assert not local.closed
    await local.close()


async def test_outdated_version_gets_warning_but_stays(make_server):
    srv = await make_server()
    peer = await WsPeer(srv.url, TOKEN).connect()
    await peer.identify(version="4.150.0")
    await peer.wait_for(EventReceived, lambda e: e.event.name == "notification")
    assert peer.notifications()[0]["level"] == "warning"
    assert not peer.closed
    await peer.close()


async def test_polling_handshake_then_websocket_upgrade(make_server):
    srv = await make_server()
    base = f"{srv.url}/primus/{TOKEN}/?EIO=4&transport=polling&b64=1"
    async with aiohttp.ClientSession() as http:
        packets = await polling_get(http, base, 4)
        assert packets[0].type == PacketType.OPEN
        handshake = OpenHandshake.from_json(packets[0].data)
        assert handshake.upgrades == ["websocket"]
        sid = handshake.sid
        poll_url = f"{base}&sid={sid}"
        from shared.broker_protocol import BrokerConnection

        conn = BrokerConnection("client")
        identify, _ = conn.send_event("identify", identify_payload(TOKEN))
        status, text = await polling_post(http, poll_url, [identify], 4)
        assert (status, text) == (200, "ok")
        pending = asyncio.create_task(polling_get(http, poll_url, 4))
        await asyncio.sleep(0.1)  # the poll reaches the server and waits there (unobservable)
        ws = await http.ws_connect(f"{srv.url}/primus/{TOKEN}/?EIO=4&transport=websocket&sid={sid}")
        await ws.send_str("2probe")
        assert (await ws.receive_str()) == "3probe"
        released = await asyncio.wait_for(pending, 5)
        assert Packet(PacketType.NOOP) in released or any(
            p.type == PacketType.NOOP for p in released
        )
        await ws.send_str("5")
        await ws.send_str(conn.primus_ping(7))
        assert conn.receive(await ws.receive_str()) == [PrimusPong("7")]
        assert srv.server.sessions[sid].transport == "websocket"
        await ws.close()


async def test_engineio_v3_polling(make_server):
    srv = await make_server()
    base = f"{srv.url}/primus/{TOKEN}/?EIO=3&transport=polling&b64=1"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as resp:
            text = await resp.text()
        # v3 payloads are length-prefixed: "<len>:0{...}"
        assert text.split(":", 1)[0].isdigit()
        from shared.engineio import decode_payload

        packets = decode_payload(text, 3)
        sid = OpenHandshake.from_json(packets[0].data).sid
        poll_url = f"{base}&sid={sid}"
        # a v3 client pings and the server pongs
        status, _ = await polling_post(http, poll_url, ["2"], 3)
        assert status == 200
        from shared.broker_protocol import BrokerConnection

        conn = BrokerConnection("client", eio=3)
        from shared.engineio import encode_packet

        # the handshake answer already carried the server's identify after the OPEN packet
        events = [e for p in packets for e in conn.receive(encode_packet(p, 3))]
        for _ in range(3):
            for packet in await polling_get(http, poll_url, 3):
                from shared.engineio import encode_packet

                events += conn.receive(encode_packet(packet, 3))
            if any(isinstance(e, EnginePong) for e in events):
                break
        assert any(isinstance(e, EnginePong) for e in events)
        assert any(isinstance(e, ServerIdentified) for e in events)


async def test_unknown_token_refused(make_server):
    srv = await make_server()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}/primus/not-a-known-token/?EIO=4&transport=polling") as resp:
            assert resp.status == 401
            assert "unknown broker token" in (await resp.json())["message"]
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(f"{srv.url}/primus/not-a-known-token/?EIO=4&transport=websocket")
        assert info.value.status == 401
        async with http.get(f"{srv.url}/primus/{TOKEN}/?EIO=7&transport=polling") as resp:
            assert (
                resp.status == 400
                and "Unsupported protocol version" in (await resp.json())["message"]
            )
        async with http.get(f"{srv.url}/primus/{TOKEN}/?EIO=4&transport=carrier-pigeon") as resp:
            assert resp.status == 400 and "Transport unknown" in (await resp.json())["message"]
        async with http.get(f"{srv.url}/primus/{TOKEN}/?EIO=4&transport=polling&sid=nope") as resp:
            assert resp.status == 400 and "Session ID unknown" in (await resp.json())["message"]


async def test_token_lookup_is_case_insensitive(make_server):
    srv = await make_server()
    peer = await WsPeer(srv.url, TOKEN.upper()).connect()
    await peer.identify()
    await peer.wait_for(ServerIdentified)
    await eventually_async(lambda: srv.server.pool.select(TOKEN) is not None)
    await peer.close()


@pytest.mark.parametrize(
    ("garbage", "named"),
    [
        ("9hello", "unknown engine.io packet type '9'"),
        ("4{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not UTF-8"),
        ('4{"type":1,"id":99,"data":[]}', "ack for unknown id 99"),
        ('4{"type":7,"data":[]}', "neither a Primus control string nor an emitter packet"),
        ('4{"type":0,"data":["request",{"body":{"$binary":"%%%"}}]}', "not valid base64"),
        ('4{"type":0,"data":["identify",{"metadata":{}}]}', "identify without token"),
    ],
)
async def test_garbage_gets_named_error_and_others_unaffected(make_server, garbage, named):
    srv = await make_server()
    bystander = await connected(srv.url, role="secondary")
    peer = await connected(srv.url, role="primary")
    await peer.send_raw(garbage)
    note = await peer.wait_for(EventReceived, lambda e: e.event.name == "notification")
    assert note.event.args[0]["level"] == "error"
    assert named in note.event.args[0]["message"]
    # the offending connection and the other one still work
    await peer.ping(5)
    await peer.wait_for(PrimusPong)
    await bystander.ping(6)
    await bystander.wait_for(PrimusPong)
    async with aiohttp.ClientSession() as http, http.get(f"{srv.url}/broker/{TOKEN}/list") as resp:
        assert resp.status == 200
    await peer.close()
    await bystander.close()


async def test_identify_with_other_token_is_refused(make_server):
    srv = await make_server()
    peer = await WsPeer(srv.url, TOKEN).connect()
    await peer.send_event("identify", identify_payload(OTHER_TOKEN))
    await peer.wait_for(ServerClose)
    await peer.wait_closed()
    assert "does not match" in peer.notifications()[0]["message"]
    assert srv.server.pool.select(TOKEN) is None and srv.server.pool.select(OTHER_TOKEN) is None


async def test_oversized_message_closes_only_that_socket(make_server):
    srv = await make_server(SOCKET_MAX_RESPONSE_LENGTH="4096")
    bystander = await connected(srv.url, role="secondary")
    peer = await connected(srv.url, role="primary")
    await peer.send_raw("4" + json.dumps("x" * 10000))
    await peer.wait_closed()
    assert peer.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    await bystander.ping(3)
    await bystander.wait_for(PrimusPong)
    await bystander.close()


async def test_oversized_polling_payload_gets_413(make_server):
    srv = await make_server(SOCKET_MAX_RESPONSE_LENGTH="4096")
    base = f"{srv.url}/primus/{TOKEN}/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        packets = await polling_get(http, base, 4)
        sid = OpenHandshake.from_json(packets[0].data).sid
        status, text = await polling_post(
            http, f"{base}&sid={sid}", ["4" + json.dumps("y" * 9000)], 4
        )
        assert status == 413 and "exceeds the limit of 4096" in text


async def test_garbage_polling_payload_gets_error_notification(make_server):
    srv = await make_server()
    base = f"{srv.url}/primus/{TOKEN}/?EIO=3&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as resp:
            from shared.engineio import decode_payload

            sid = OpenHandshake.from_json(decode_payload(await resp.text(), 3)[0].data).sid
        async with http.post(f"{base}&sid={sid}", data=b"99:4abc") as resp:
            assert resp.status == 200
        from shared.broker_protocol import BrokerConnection
        from shared.engineio import encode_packet

        conn = BrokerConnection("client", eio=3)
        events = [
            e
            for p in await polling_get(http, f"{base}&sid={sid}", 3)
            for e in conn.receive(encode_packet(p, 3))
        ]
        messages = [
            e.event.args[0]["message"]
            for e in events
            if isinstance(e, EventReceived) and e.event.name == "notification"
        ]
        assert any("larger than the remaining body" in m for m in messages)


async def test_noop_and_identify_event_types_are_core_events():
    # guards the imports the peer relies on (ClientIdentified is server-side only)
    assert ClientIdentified.__name__ == "ClientIdentified" and Noop.__name__ == "Noop"


async def test_socket_that_never_identifies_is_closed(make_server):
    srv = await make_server(
        SOCKET_PING_INTERVAL="200", SOCKET_PING_TIMEOUT="300", PRIMUS_TIMEOUT="600"
    )
    peer = await WsPeer(srv.url, TOKEN).connect()
    await peer.wait_for(ServerClose, within=5)
    await peer.wait_closed()
    assert "no identify within" in peer.notifications()[0]["message"]


async def test_poll_arriving_after_the_probe_returns_at_once(make_server):
    """The client's GET may still be on its way when the probe is answered: it must not wait."""
    srv = await make_server()
    base = f"{srv.url}/primus/{TOKEN}/?EIO=4&transport=polling&b64=1"
    async with aiohttp.ClientSession() as http:
        packets = await polling_get(http, base, 4)
        sid = OpenHandshake.from_json(packets[0].data).sid
        ws = await http.ws_connect(f"{srv.url}/primus/{TOKEN}/?EIO=4&transport=websocket&sid={sid}")
        await ws.send_str("2probe")
        assert (await ws.receive_str()) == "3probe"
        released = await asyncio.wait_for(polling_get(http, f"{base}&sid={sid}", 4), 2)
        assert [p.type for p in released] == [PacketType.NOOP]
        await ws.send_str("5")
        await ws.send_str('4"primus::ping::9"')
        assert (await ws.receive_str()) == '4"primus::pong::9"'
        await ws.close()


async def test_a_flood_of_garbage_ends_that_socket_only(make_server):
    srv = await make_server()
    bystander = await connected(srv.url, role="secondary")
    peer = await connected(srv.url, role="primary")
    for _ in range(25):
        await peer.send_raw("4{garbage")
    await peer.wait_for(ServerClose)
    await peer.wait_closed()
    await bystander.ping(8)
    await bystander.wait_for(PrimusPong)
    await bystander.close()
