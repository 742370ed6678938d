"""A hostile broker client that starts a streamed answer and then stalls (or trickles) must not
hold the server's caller: the time between bytes and the whole request are bounded (issue 16.9)."""

from __future__ import annotations

import asyncio
import contextlib
import struct

import aiohttp
import pytest

from shared.broker_protocol import EventReceived, ServerIdentified
from shared.response_stream import CONTENT_TYPE, encode_head
from tests.broker_server.conftest import TOKEN
from tests.broker_server.peer import WsPeer
from tests.broker_server.test_relay import wait_ready

#: a test fails instead of hanging if a bound does not hold
CALLER_PATIENCE = 15


class StallingClient:
    """Identifies like a real client, then answers each streamed request with a hand-written
    ``/response-data`` POST (a raw socket, so even its head goes out alone): ``pieces`` of the
    body with ``pause`` seconds before each, then silence, unless ``finish``."""

    def __init__(self, peer: WsPeer, pieces: list[bytes], pause: float, finish: bool = False):
        self.peer = peer
        self.pieces = pieces
        self.pause = pause
        self.finish = finish
        self.post_status: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        peer.handler = self.answer

    async def answer(self, peer: WsPeer, received: EventReceived) -> None:
        stream_id = received.event.args[0]["streamingID"]
        host, port = peer.base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            size = sum(map(len, self.pieces)) if self.finish else 1 << 30
            writer.write(
                f"POST /response-data/{peer.token}/{stream_id} HTTP/1.1\r\n"
                f"Host: {host}\r\nContent-Type: {CONTENT_TYPE}\r\n"
                f"Content-Length: {size}\r\n\r\n".encode()
            )
            await writer.drain()
            sending = asyncio.create_task(self._send(writer))
            try:
                # the server may answer (and close) before the pieces are all out
                status_line = await reader.readline()
            finally:
                sending.cancel()
            self.post_status.set_result(int(status_line.split()[1]))
        except (ConnectionError, IndexError, ValueError) as exc:
            self.post_status.set_exception(exc)
        finally:
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            for piece in self.pieces:
                await asyncio.sleep(self.pause)
                writer.write(piece)
                await writer.drain()


async def stalling_peer(url: str, pieces: list[bytes], pause: float) -> StallingClient:
    peer = await WsPeer(url, TOKEN).connect()
    client = StallingClient(peer, pieces, pause)
    await peer.identify()
    await peer.wait_for(ServerIdentified)
    return client


def head(status: int = 200, headers: dict[str, str] | None = None) -> bytes:
    return encode_head(status, headers or {"content-type": "text/plain"})


async def test_post_that_sends_nothing_gives_the_caller_504_naming_the_stall(make_server):
    srv = await make_server(BROKER_SERVER_STREAM_IDLE_TIMEOUT="300")
    client = await stalling_peer(srv.url, [], 0)
    await wait_ready(srv)
    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(CALLER_PATIENCE):
            async with http.get(f"{srv.url}/broker/{TOKEN}/list") as resp:
                assert resp.status == 504
                message = (await resp.json())["message"]
    assert "stalled (no data for 0.3s)" in message
    assert await asyncio.wait_for(client.post_status, CALLER_PATIENCE) == 408
    await client.peer.close()


async def test_stall_after_the_head_cuts_the_callers_connection(make_server):
    srv = await make_server(BROKER_SERVER_STREAM_IDLE_TIMEOUT="300")
    client = await stalling_peer(srv.url, [head(), b"first part "], 0.05)
    await wait_ready(srv)
    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(CALLER_PATIENCE):
            async with http.get(f"{srv.url}/broker/{TOKEN}/list") as resp:
                # the head went out before the stall: the only signal left is a cut body
                assert resp.status == 200
                with pytest.raises(aiohttp.ClientPayloadError):
                    await resp.read()
    assert await asyncio.wait_for(client.post_status, CALLER_PATIENCE) == 408
    # the socket is unaffected: the next request is served by a well-behaved answer
    client.pieces, client.finish = [head(), b"whole"], True
    client.post_status = asyncio.get_running_loop().create_future()
    async with aiohttp.ClientSession() as http, http.get(f"{srv.url}/broker/{TOKEN}/x") as resp:
        assert resp.status == 200
        assert await resp.read() == b"whole"
    await client.peer.close()


async def test_a_trickling_head_is_bounded_by_the_whole_request_timeout(make_server):
    # one byte every 0.1 s never trips the idle bound (5 s); the whole request's 1 s does
    srv = await make_server(
        BROKER_SERVER_STREAM_IDLE_TIMEOUT="5000", BROKER_WEBSERVER_REQUEST_TIMEOUT="1000"
    )
    frame = head(headers={"content-type": "text/plain", "x-padding": "p" * 200})
    client = await stalling_peer(srv.url, [bytes([b]) for b in frame], 0.1)
    await wait_ready(srv)
    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(CALLER_PATIENCE):
            async with http.get(f"{srv.url}/broker/{TOKEN}/list") as resp:
                assert resp.status == 504
                assert "did not complete within 1s" in (await resp.json())["message"]
    await client.peer.close()


async def test_a_trickling_body_is_cut_at_the_whole_request_timeout(make_server):
    srv = await make_server(
        BROKER_SERVER_STREAM_IDLE_TIMEOUT="5000", BROKER_WEBSERVER_REQUEST_TIMEOUT="1000"
    )
    client = await stalling_peer(srv.url, [head(), *[b"x"] * 1000], 0.05)
    await wait_ready(srv)
    received = bytearray()
    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(CALLER_PATIENCE):
            async with http.get(f"{srv.url}/broker/{TOKEN}/list") as resp:
                assert resp.status == 200
                with pytest.raises(aiohttp.ClientPayloadError):
                    async for chunk in resp.content.iter_any():
                        received += chunk
    # some of the body came through before the cut, far from all of it
    assert 0 < len(received) < 1000
    assert await asyncio.wait_for(client.post_status, CALLER_PATIENCE) == 408
    await client.peer.close()


async def test_an_answer_within_the_bounds_is_relayed_whole(make_server):
    # pauses shorter than the idle bound, in a head split across pieces: nothing is cut
    srv = await make_server(BROKER_SERVER_STREAM_IDLE_TIMEOUT="1000")
    frame = head() + b"slow but steady"
    pieces = [frame[:3], frame[3:9], frame[9:]]
    assert struct.unpack("<I", frame[:4])[0] > 0
    client = await stalling_peer(srv.url, pieces, 0.2)
    client.finish = True
    await wait_ready(srv)
    async with aiohttp.ClientSession() as http, http.get(f"{srv.url}/broker/{TOKEN}/l") as resp:
        assert resp.status == 200
        assert await resp.read() == b"slow but steady"
    assert await asyncio.wait_for(client.post_status, CALLER_PATIENCE) == 200
    await client.peer.close()
