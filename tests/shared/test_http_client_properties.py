"""Property-based tests of the HTTP/1.1 client's response parser (hypothesis).

Two properties: any answer a valid server could give (status, reason, headers, a body framed
by Content-Length, chunked or close) reads back exactly, however the bytes are split on the
wire; and any bytes at all either parse or fail with :class:`HttpProtocolError` (or the
connection errors a caller already handles), never anything else and never a hang.
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.http_client import HttpClient, HttpProtocolError, _parse_head

TOKEN = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"),
    min_size=1,
    max_size=20,
).filter(lambda name: name.lower() not in ("content-length", "transfer-encoding", "connection"))
FIELD_VALUE = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=40
)
REASON = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=30
)
#: statuses whose answers carry a body (1xx, 204 and 304 never do)
STATUS = st.integers(200, 599).filter(lambda s: s not in (204, 304))

ANSWER_ERRORS = (HttpProtocolError, OSError, TimeoutError, asyncio.IncompleteReadError)


async def _serve_once(answer: list[bytes]) -> tuple[asyncio.Server, str]:
    """A loopback server that reads one request head and writes ``answer`` piece by piece."""

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            for piece in answer:
                writer.write(piece)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(reply, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v2/"


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return [p for p in pieces if p]


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    out, pos, turn = [], 0, 0
    while pos < len(body):
        size = sizes[turn % len(sizes)] if sizes else len(body)
        turn += 1
        part = body[pos : pos + size]
        pos += len(part)
        out.append(b"%x\r\n%s\r\n" % (len(part), part))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


async def _fetch(answer: list[bytes]) -> tuple[int, str, list[tuple[str, str]], bytes]:
    server, url = await _serve_once(answer)
    client = HttpClient(None)
    try:
        response = await client.request("GET", url, headers={}, read_timeout=5.0)
        body = await response.read()
        return response.status, response.reason, list(response.headers), body
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=STATUS,
    reason=REASON,
    fields=st.lists(st.tuples(TOKEN, FIELD_VALUE), max_size=6),
    body=st.binary(max_size=3000),
    framing=st.sampled_from(["length", "chunked", "close"]),
    chunk_sizes=st.lists(st.integers(1, 700), min_size=1, max_size=5),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
)
def test_a_valid_answer_reads_back_exactly_however_the_wire_splits_it(
    status: int,
    reason: str,
    fields: list[tuple[str, str]],
    body: bytes,
    framing: str,
    chunk_sizes: list[int],
    cuts: list[int],
) -> None:
    framing_header = {
        "length": [("Content-Length", str(len(body)))],
        "chunked": [("Transfer-Encoding", "chunked")],
        "close": [("Connection", "close")],
    }[framing]
    headers = fields + framing_header
    head = f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1") + b"".join(
        f"{name}: {value}\r\n".encode("latin-1") for name, value in headers
    )
    payload = _chunked(body, chunk_sizes) if framing == "chunked" else body
    wire = head + b"\r\n" + payload

    got_status, got_reason, got_headers, got_body = asyncio.run(_fetch(_split(wire, cuts)))

    assert got_status == status
    assert got_reason == reason
    assert got_headers == [(name, value.strip()) for name, value in headers]
    assert got_body == body


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=400))
def test_any_head_bytes_parse_or_fail_with_a_protocol_error(raw: bytes) -> None:
    try:
        status, reason, headers = _parse_head(raw + b"\r\n\r\n")
    except HttpProtocolError:
        return
    assert isinstance(status, int) and isinstance(reason, str)
    assert all(name and name == name.strip() for name, _ in headers)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    head=st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda status, junk: b"HTTP/1.1 %d x\r\n" % status + junk,
            st.integers(100, 999),
            st.binary(max_size=200),
        ),
    ),
    tail=st.binary(max_size=300),
)
def test_any_answer_bytes_give_a_response_or_a_handled_error_in_bounded_time(
    head: bytes, tail: bytes
) -> None:
    async def attempt() -> None:
        async with asyncio.timeout(20):
            try:
                await _fetch([head + b"\r\n\r\n" + tail])
            except ANSWER_ERRORS:
                pass

    asyncio.run(attempt())
