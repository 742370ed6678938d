"""A small keep-alive HTTP/1.1 client on asyncio streams, for paths where aiohttp costs too much.

Two users. The broker client: each request through the broker makes two HTTP calls from the client (the agent, then
``POST /response-data``). aiohttp's general-purpose client costs about 75 µs of CPU per call
on the benchmark machine; this one does what those two calls need and nothing else: direct
connections (http or https with our CA settings), a per-origin pool of idle connections,
request bodies as bytes or an async iterator (chunked), and responses framed by
Content-Length, chunked encoding or connection close, read incrementally. The ``cr-agent scan`` command: its registry transport
(:mod:`cr_agent.registry.stream_transport`) spares a one-shot process aiohttp's import.

Requests that must go through a proxy keep using aiohttp in both users.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from typing import Any

MAX_HEAD = 256 * 1024  # also the stream buffer size
IDLE_SECONDS = 4.0  # below Node's default 5 s keep-alive: never reuse a socket the peer is closing


class HttpProtocolError(Exception):
    """The peer's answer is not valid HTTP/1.1; the message says what is wrong."""


class _Conn:
    # plain slotted classes here, not dataclasses: a one-shot `cr-agent scan` pays for every
    # class defined at import, and dataclass generation costs several times more
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def usable(self) -> bool:
        return (
            not self.writer.is_closing()
            and not self.reader.at_eof()
            and time.monotonic() - self.idle_since < IDLE_SECONDS
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


Origin = tuple[str, str, int]


class HttpResponse:
    """One answer: status and headers at once, the body read on demand."""

    __slots__ = (
        "_chunk_left",
        "_chunked",
        "_client",
        "_conn",
        "_done",
        "_keep_alive",
        "_origin",
        "_read_timeout",
        "_remaining",
        "_slot",
        "_until_close",
        "content_length",
        "headers",
        "reason",
        "status",
    )

    def __init__(
        self,
        *,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        content_length: int | None,
        client: HttpClient,
        origin: Origin,
        conn: _Conn | None,
        chunked: bool,
        until_close: bool,
        keep_alive: bool,
        read_timeout: float | None,
        remaining: int = 0,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content_length = content_length
        self._client = client
        self._origin = origin
        self._conn = conn
        self._chunked = chunked
        self._until_close = until_close
        self._keep_alive = keep_alive
        self._read_timeout = read_timeout
        self._remaining = remaining
        self._chunk_left = 0
        self._done = False
        self._slot: asyncio.Semaphore | None = None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body; with ``limit``, raises :class:`BodyTooLarge` past that many bytes."""
        parts = []
        size = 0
        async for chunk in self.iter_chunks(256 * 1024):
            size += len(chunk)
            if limit is not None and size > limit:
                self.close()
                raise BodyTooLarge(size)
            parts.append(chunk)
        return b"".join(parts)

    async def iter_chunks(self, size: int) -> AsyncIterator[bytes]:
        """Body bytes as they arrive, at most ``size`` per chunk; releases the connection at the end."""
        try:
            while not self._done:
                chunk = await self._next(size)
                if chunk:
                    yield chunk
        except BaseException:
            self.close()
            raise
        self.release()

    async def _next(self, size: int) -> bytes:
        conn = self._conn
        if conn is None:
            self._done = True
            return b""
        reader = conn.reader
        if self._chunked:
            if self._chunk_left == 0:
                line = await self._timed(reader.readuntil(b"\r\n"))
                try:
                    self._chunk_left = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise HttpProtocolError("bad chunk size line") from None
                if self._chunk_left == 0:
                    # trailers end with an empty line
                    while (await self._timed(reader.readuntil(b"\r\n"))) != b"\r\n":
                        pass
                    self._done = True
                    return b""
            data = await self._timed(reader.read(min(size, self._chunk_left)))
            if not data:
                raise HttpProtocolError("connection closed inside a chunk")
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                if await self._timed(reader.readexactly(2)) != b"\r\n":
                    raise HttpProtocolError("chunk not followed by CRLF")
            return data
        if self._until_close:
            data = await self._timed(reader.read(size))
            if not data:
                self._done = True
                self._keep_alive = False
            return data
        if self._remaining <= 0:
            self._done = True
            return b""
        data = await self._timed(reader.read(min(size, self._remaining)))
        if not data:
            raise HttpProtocolError(f"connection closed with {self._remaining} body bytes missing")
        self._remaining -= len(data)
        if self._remaining == 0:
            self._done = True
        return data

    async def _timed(self, awaitable: Any) -> bytes:
        try:
            if self._read_timeout is None:
                return await awaitable
            async with asyncio.timeout(self._read_timeout):
                return await awaitable
        except asyncio.IncompleteReadError:
            raise HttpProtocolError("connection closed in the middle of the response") from None
        except asyncio.LimitOverrunError:
            raise HttpProtocolError("response line too long") from None

    def _free_slot(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None:
            slot.release()

    def release(self) -> None:
        """Hand the connection back for reuse when the body was read to the end."""
        conn, self._conn = self._conn, None
        self._free_slot()
        if conn is None:
            return
        if self._done and self._keep_alive:
            self._client._put(self._origin, conn)
        else:
            conn.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._free_slot()


class BodyTooLarge(Exception):
    """A body passed the limit its reader set."""

    def __init__(self, size: int) -> None:
        super().__init__(f"body larger than allowed ({size} bytes read)")
        self.size = size


class HttpClient:
    """Keep-alive connections per origin; with ``max_connections_per_origin``, at most that
    many connections to one origin are open at once and further requests queue for a free one
    (a burst of thousands of requests must not become thousands of sockets to the agent)."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        *,
        max_idle_per_origin: int = 64,
        max_connections_per_origin: int | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        self.max_connections = max_connections_per_origin
        self.max_idle = (
            max_idle_per_origin
            if max_connections_per_origin is None
            else min(max_idle_per_origin, max_connections_per_origin)
        )
        self._idle: dict[Origin, list[_Conn]] = {}
        self._slots: dict[Origin, asyncio.Semaphore] = {}

    async def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def _put(self, origin: Origin, conn: _Conn) -> None:
        pool = self._idle.setdefault(origin, [])
        if len(pool) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        pool.append(conn)

    def _take(self, origin: Origin) -> _Conn | None:
        pool = self._idle.get(origin)
        while pool:
            conn = pool.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    async def _open(self, origin: Origin, connect_timeout: float | None) -> _Conn:
        scheme, host, port = origin
        tls = self.ssl_context if scheme == "https" else None
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls else None, limit=MAX_HEAD
                )
        except OSError as exc:
            # several addresses (::1 and 127.0.0.1) all refusing come back as one errno-less error
            if exc.errno is None and "Connect call failed" in str(exc):
                raise ConnectionRefusedError(errno.ECONNREFUSED, str(exc)) from None
            raise
        return _Conn(reader, writer)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | AsyncIterator[bytes] | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> HttpResponse:
        """Send one request; the caller must read the body to the end, or release/close it.

        Connection failures raise :class:`OSError` (ConnectionRefusedError, socket.gaierror, ...)
        before any byte was sent, so the caller may retry them.
        """
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported URL {url!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        origin: Origin = (scheme, parts.hostname, port)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        head = self._head(method, target, parts.netloc.rsplit("@", 1)[-1], headers, body)
        slot = self._slot(origin)
        if slot is None:
            return await self._request(origin, method, head, body, connect_timeout, read_timeout)
        await slot.acquire()
        try:
            response = await self._request(
                origin, method, head, body, connect_timeout, read_timeout
            )
        except BaseException:
            slot.release()
            raise
        response._slot = slot  # freed when the response is released or closed
        return response

    def _slot(self, origin: Origin) -> asyncio.Semaphore | None:
        if self.max_connections is None:
            return None
        slot = self._slots.get(origin)
        if slot is None:
            slot = self._slots[origin] = asyncio.Semaphore(self.max_connections)
        return slot

    async def _request(
        self,
        origin: Origin,
        method: str,
        head: bytes,
        body: bytes | AsyncIterator[bytes] | None,
        connect_timeout: float | None,
        read_timeout: float | None,
    ) -> HttpResponse:
        reused = self._take(origin)
        conn = reused or await self._open(origin, connect_timeout)
        try:
            response = await self._exchange(conn, origin, method, head, body, read_timeout)
        except (
            ConnectionResetError,
            BrokenPipeError,
            HttpProtocolError,
            asyncio.IncompleteReadError,
        ) as exc:
            conn.close()
            # a pooled socket the peer closed meanwhile: one retry on a fresh connection,
            # possible only when the body can be sent again
            if reused is None or not (body is None or isinstance(body, bytes)):
                if isinstance(exc, asyncio.IncompleteReadError):
                    raise HttpProtocolError("connection closed before the response") from None
                raise
            conn = await self._open(origin, connect_timeout)
            try:
                response = await self._exchange(conn, origin, method, head, body, read_timeout)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        return response

    @staticmethod
    def _head(
        method: str,
        target: str,
        host: str,
        headers: Mapping[str, str],
        body: bytes | AsyncIterator[bytes] | None,
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1"]
        lowered = {k.lower() for k in headers}
        if "host" not in lowered:
            lines.append(f"Host: {host}")
        for key, value in headers.items():
            if key.lower() in ("content-length", "transfer-encoding"):
                continue
            if "\r" in value or "\n" in value or "\r" in key or "\n" in key:
                raise ValueError(f"header {key!r} contains a line break")
            lines.append(f"{key}: {value}")
        if isinstance(body, bytes):
            lines.append(f"Content-Length: {len(body)}")
        elif body is not None:
            lines.append("Transfer-Encoding: chunked")
        elif method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _exchange(
        self,
        conn: _Conn,
        origin: Origin,
        method: str,
        head: bytes,
        body: bytes | AsyncIterator[bytes] | None,
        read_timeout: float | None,
    ) -> HttpResponse:
        writer = conn.writer
        if isinstance(body, bytes):
            writer.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                writer.write(body)
            await writer.drain()
        elif body is not None:
            writer.write(head)
            async for chunk in body:
                if chunk:
                    writer.write(b"%x\r\n" % len(chunk))
                    writer.write(chunk)
                    writer.write(b"\r\n")
                    await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        else:
            writer.write(head)
            await writer.drain()
        while True:
            try:
                async with asyncio.timeout(read_timeout):
                    raw = await conn.reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                raise HttpProtocolError("response head too large") from None
            status, reason, headers = _parse_head(raw)
            if status >= 200 or status == 101:
                break  # 1xx interim answers are skipped
        return _framed(self, conn, origin, method, status, reason, headers, read_timeout)


def _parse_head(raw: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    lines = raw.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/1."):
        raise HttpProtocolError(f"bad status line {lines[0][:80]!r}")
    try:
        status = int(status_line[1])
    except ValueError:
        raise HttpProtocolError(f"bad status code {status_line[1][:10]!r}") from None
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpProtocolError(f"bad header line {line[:80]!r}")
        headers.append((name, value.strip()))
    return status, status_line[2] if len(status_line) > 2 else "", headers


def _framed(
    client: HttpClient,
    conn: _Conn,
    origin: Origin,
    method: str,
    status: int,
    reason: str,
    headers: list[tuple[str, str]],
    read_timeout: float | None,
) -> HttpResponse:
    lowered: dict[str, str] = {}
    for key, value in headers:
        lowered.setdefault(key.lower(), value)
    keep_alive = "close" not in lowered.get("connection", "").lower()
    chunked = "chunked" in lowered.get("transfer-encoding", "").lower()
    length: int | None = None
    if "content-length" in lowered and not chunked:
        try:
            length = int(lowered["content-length"])
        except ValueError:
            raise HttpProtocolError("bad Content-Length") from None
        if length < 0:
            raise HttpProtocolError("negative Content-Length")
    no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
    response = HttpResponse(
        status=status,
        reason=reason,
        headers=headers,
        content_length=0 if no_body else length,
        client=client,
        origin=origin,
        conn=conn,
        chunked=chunked and not no_body,
        until_close=not no_body and not chunked and length is None,
        keep_alive=keep_alive,
        read_timeout=read_timeout,
        remaining=0 if no_body else (length or 0),
    )
    if no_body or (length == 0 and not chunked):
        response._done = True
    if response._until_close:
        response._keep_alive = False
    return response
