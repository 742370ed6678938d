"""The small keep-alive HTTP/1.1 client: framing, reuse, stale sockets, bad answers, timeouts.

Peers are real loopback servers: the aiohttp test agent, and raw asyncio servers that send
scripted bytes where an edge case needs exact control over the wire."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from deploy.processes import refused_port
from shared.http_client import BodyTooLarge, HttpClient, HttpProtocolError
from shared.port_file import bound_port
from tests.broker_client.agent import Recorder, agent_app, big_sha256, start

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def scripted(script: Script) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(script, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


async def test_get_post_and_connection_reuse_against_aiohttp_agent() -> None:
    recorder = Recorder()
    runner = await start(agent_app(recorder))
    port = bound_port(runner.addresses, 0)
    client = HttpClient(None)
    try:
        for i in range(3):
            response = await client.request(
                "GET", f"http://127.0.0.1:{port}/list?i={i}", headers={"x-a": "1"}
            )
            assert response.status == 200
            body = await response.read()
            assert b'"path_qs": "/list?i=' in body
        assert len(client._idle[("http", "127.0.0.1", port)]) == 1  # one socket served all three

        async def chunks() -> AsyncIterator[bytes]:
            for part in (b'{"a":', b" 1}"):
                yield part

        response = await client.request(
            "POST", f"http://127.0.0.1:{port}/scan", headers={}, body=chunks()
        )
        assert response.status == 200 and (await response.read()).count(b'{\\"a\\": 1}') == 1
        response = await client.request(
            "GET", f"http://127.0.0.1:{port}/list/big/3000000", headers={}
        )
        digest = hashlib.sha256()
        async for chunk in response.iter_chunks(65536):
            assert len(chunk) <= 65536
            digest.update(chunk)
        assert digest.hexdigest() == big_sha256(3_000_000)
        assert recorder.seen[0]["headers"]["x-a"] == "1"
    finally:
        await client.close()
        await runner.cleanup()


async def test_chunked_response_with_trailers_and_304_without_body() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
        )
        await read_request(reader)
        writer.write(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n")
        await writer.drain()

    server, url = await scripted(script)
    client = HttpClient(None)
    try:
        first = await client.request("GET", url + "/a", headers={})
        assert await first.read() == b"hello world"
        second = await client.request("GET", url + "/b", headers={})  # same socket, reused
        assert second.status == 304 and await second.read() == b""
    finally:
        await client.close()
        server.close()


async def test_body_until_close_and_read_limit() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"z" * 5000)
        await writer.drain()
        writer.close()

    server, url = await scripted(script)
    client = HttpClient(None)
    try:
        response = await client.request("GET", url, headers={})
        assert response.content_length is None and await response.read() == b"z" * 5000
        response = await client.request("GET", url, headers={})
        with pytest.raises(BodyTooLarge):
            await response.read(limit=100)
    finally:
        await client.close()
        server.close()


async def test_stale_pooled_socket_is_retried_once_on_a_fresh_connection() -> None:
    served = 0

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await read_request(reader)
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        # keep-alive announced, but the server drops the socket right after answering
        await asyncio.sleep(0.05)
        writer.close()

    server, url = await scripted(script)
    client = HttpClient(None)
    try:
        assert await (await client.request("GET", url, headers={})).read() == b"ok"
        await asyncio.sleep(0.2)  # the server drops the pooled socket meanwhile: the case here
        assert await (await client.request("POST", url, headers={}, body=b"x")).read() == b"ok"
        assert served == 2
    finally:
        await client.close()
        server.close()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTX/1.1 200 OK\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 abc OK\r\n\r\n", "bad status code"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "body bytes missing"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    ],
)
async def test_malformed_answers_raise_protocol_errors(answer: bytes, message: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    server, url = await scripted(script)
    client = HttpClient(None)
    try:
        with pytest.raises(HttpProtocolError, match=message):
            response = await client.request("GET", url, headers={})
            await response.read()
    finally:
        await client.close()
        server.close()


async def test_refused_connection_and_read_timeout() -> None:
    client = HttpClient(None)
    with pytest.raises(ConnectionRefusedError):
        await client.request("GET", f"http://127.0.0.1:{refused_port()}/", headers={})

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    server, url = await scripted(silent)
    try:
        with pytest.raises(TimeoutError):
            await client.request("GET", url, headers={}, read_timeout=0.2)
    finally:
        await client.close()
        server.close()


async def test_header_injection_is_refused() -> None:
    client = HttpClient(None)
    with pytest.raises(ValueError, match="line break"):
        await client.request("GET", "http://127.0.0.1:9/", headers={"x-a": "1\r\nx-b: 2"})


async def test_bounded_pool_frees_a_slot_on_release_close_and_failure() -> None:
    recorder = Recorder()
    runner = await start(agent_app(recorder))
    port = bound_port(runner.addresses, 0)
    client = HttpClient(None, max_connections_per_origin=1)
    url = f"http://127.0.0.1:{port}"
    try:
        first = await client.request("GET", f"{url}/list/a", headers={})
        # the one slot is taken until the body is read: a second request waits
        waiting = asyncio.ensure_future(client.request("GET", f"{url}/list/b", headers={}))
        await asyncio.sleep(0.2)  # a window in which it must NOT get the slot
        assert not waiting.done()
        first.close()  # dropped unread: the slot comes back all the same
        second = await asyncio.wait_for(waiting, 5)
        await second.read()  # read to the end: released, socket kept for reuse
        third = await asyncio.wait_for(client.request("GET", f"{url}/list/c", headers={}), 5)
        third.release()
        dead = f"http://127.0.0.1:{refused_port()}/x"
        for _ in range(2):  # a failed connect gives its slot back (else the second would hang)
            with pytest.raises(ConnectionRefusedError):
                await asyncio.wait_for(client.request("GET", dead, headers={}), 5)
        fourth = await asyncio.wait_for(client.request("GET", f"{url}/list/d", headers={}), 5)
        assert fourth.status == 200
        await fourth.read()
    finally:
        await client.close()
        await runner.cleanup()
