"""A hostile broker client of our own: many websockets for one token, each sending one huge message.

It speaks just enough websocket by hand (a raw asyncio stream, one prebuilt masked frame shared by
every connection) that a flood of 32 x 21 MB costs this process 21 MB, not 32 times that, and
it records exactly what the server did with each connection: refused the handshake (status and
JSON body), closed the socket (close code and reason), or answered (the engine.io packets it
sent back). Used by the memory-limit tests and by ``bench/server_memory.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

from shared.broker_protocol import BrokerConnection

MASK = b"\x01\x02\x03\x04"
#: an engine.io message carrying an emitter ack
ACK_PREFIX = '4{"type":1'


@dataclass
class Outcome:
    #: HTTP status of the handshake (101 when the websocket opened)
    status: int
    #: the JSON body of a refused handshake
    refusal: Any = None
    #: close code and reason the server sent, if it closed the socket
    close_code: int | None = None
    close_reason: str = ""
    #: text frames the server sent (engine.io packets)
    texts: list[str] = field(default_factory=list)

    @property
    def answers(self) -> list[dict[str, Any]]:
        """The server's acks to our callbacks, in order (``{"status", "headers", "body"}``)."""
        return [
            json.loads(text[1:])["data"][0] for text in self.texts if text.startswith(ACK_PREFIX)
        ]

    @property
    def acks(self) -> int:
        return sum(1 for text in self.texts if text.startswith(ACK_PREFIX))

    @property
    def notices(self) -> list[str]:
        """Notifications the server sent (its verdict on a message that was no callback)."""
        return [text for text in self.texts if '"notification"' in text]


def text_frame(payload: bytes) -> bytes:
    """One masked client text frame (FIN set)."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x81, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
    return head + MASK + _mask(payload)


def _mask(payload: bytes) -> bytes:
    # XOR with the repeating key, done on one big integer (fast for megabytes)
    key = (MASK * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")
    return value.to_bytes(len(payload), "big")


def callback_message(url: str, body_bytes: int, conn: BrokerConnection | None = None) -> bytes:
    """An engine.io message: a ``request`` event (a client callback) with a body of that size
    (ack ids count up per ``conn``)."""
    conn = conn or BrokerConnection("client", eio=4)
    request = {"url": url, "method": "POST", "headers": {}, "body": "A" * body_bytes}
    data, _ = conn.send_event("request", request, want_ack=True)
    return data.encode()


def data_message(size: int) -> bytes:
    """An engine.io message of ``size`` bytes that is no emitter packet (the server says so)."""
    return b"4" + b'"' + b"x" * (size - 3) + b'"'


class HostileSocket:
    def __init__(self, base_url: str, token: str) -> None:
        self.host, port = base_url.removeprefix("http://").split(":")
        self.port = int(port)
        self.token = token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.outcome = Outcome(status=0)

    async def open(self) -> Outcome:
        """The websocket handshake; the outcome says whether it was refused."""
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            f"GET /primus/{self.token}/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.outcome.status = int(lines[0].split()[1])
        if self.outcome.status != 101:
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            length = int(headers.get("Content-Length", "0"))
            self.outcome.refusal = json.loads(await self.reader.readexactly(length))
            self.writer.close()
        return self.outcome

    async def send(self, frame: bytes) -> None:
        """Write ``frame`` whole (a server that drops it still reads it)."""
        assert self.writer is not None
        with contextlib.suppress(ConnectionError):
            self.writer.write(frame)
            await self.writer.drain()

    async def watch(self, within: float = 30.0, acks: int = 1) -> Outcome:
        """Read what comes back until ``acks`` acks or a notification arrived, the server
        closed, or ``within``."""
        try:
            async with asyncio.timeout(within):
                while (
                    self.outcome.acks < acks
                    and not self.outcome.notices
                    and self.outcome.close_code is None
                ):
                    if not await self._read_frame():
                        break
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        return self.outcome

    async def send_and_watch(self, frame: bytes, within: float = 30.0) -> Outcome:
        sending = asyncio.create_task(self.send(frame))
        try:
            return await self.watch(within)
        finally:
            sending.cancel()

    async def _read_frame(self) -> bool:
        assert self.reader is not None
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        payload = await self.reader.readexactly(size)
        opcode = first & 0x0F
        if opcode == 0x1:
            self.outcome.texts.append(payload.decode("utf-8", "replace"))
            if payload == b"2":  # engine.io ping: stay alive while we wait
                await self.send(text_frame(b"3"))
        elif opcode == 0x8:
            self.outcome.close_code = struct.unpack("!H", payload[:2])[0] if payload else 1005
            self.outcome.close_reason = payload[2:].decode("utf-8", "replace")
            return False
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def flood(
    base_url: str, token: str, *, connections: int, frame: bytes, within: float = 60.0
) -> list[Outcome]:
    """Open ``connections`` websockets for ``token`` at once, then send ``frame`` on each that
    opened; returns every connection's outcome."""
    sockets = [HostileSocket(base_url, token) for _ in range(connections)]
    await asyncio.gather(*(s.open() for s in sockets))
    opened = [s for s in sockets if s.outcome.status == 101]
    try:
        await asyncio.gather(*(s.send_and_watch(frame, within) for s in opened))
    finally:
        for s in sockets:
            s.close()
    return [s.outcome for s in sockets]
