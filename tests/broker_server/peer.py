"""A scripted broker client for server tests, on the same sans-I/O core as everything else.

It speaks engine.io over a real aiohttp websocket (or long-polling) to a running server and
lets a test send exactly the packets it wants, good or bad, and read what comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp

from shared.broker_protocol import (
    BrokerConnection,
    EnginePing,
    EventReceived,
    Opened,
    PrimusPing,
    ProtocolEvent,
)
from shared.engineio import decode_payload, encode_payload
from shared.response_stream import CONTENT_TYPE, encode_head

CLIENT_VERSION = "5.22.14"


def identify_payload(
    token: str,
    *,
    version: str | None = CLIENT_VERSION,
    role: str = "primary",
    client_id: str = "peer-1",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "capabilities": ["post-streams"],
        "clientId": client_id,
        "identifier": "x",
        "role": role,
        "filters": {"public": [], "private": [{"method": "GET", "path": "/*"}]},
    }
    if version is not None:
        metadata["version"] = version
    return {"token": token, "metadata": metadata}


class WsPeer:
    """One websocket connection to ``/primus/<token>/``; collects every event it receives."""

    def __init__(self, base_url: str, token: str, *, eio: int = 4, role: str = "primary") -> None:
        self.base_url = base_url
        self.token = token
        self.eio = eio
        self.role = role
        self.conn = BrokerConnection("client", eio=eio)
        self.events: list[ProtocolEvent] = []
        self._new_event = asyncio.Event()
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self.auto_pong = True
        self.handler: Any = None  # async callable(EventReceived) for requests
        self.close_code: int | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"{self.base_url}/primus/{self.token}/?EIO={self.eio}&transport=websocket&connection_role={self.role}"

    async def connect(self) -> WsPeer:
        self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(self.url, max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        await self.wait_for(Opened)
        return self

    async def identify(self, **kwargs: Any) -> None:
        await self.send_event("identify", identify_payload(self.token, role=self.role, **kwargs))

    async def send_raw(self, data: str | bytes) -> None:
        assert self.ws is not None
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)

    async def send_event(self, name: str, *args: Any, want_ack: bool = False) -> int | None:
        data, ack_id = self.conn.send_event(name, *args, want_ack=want_ack)
        await self.send_raw(data)
        return ack_id

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                break
            for event in self.conn.receive(message.data):
                self.events.append(event)
                self._new_event.set()
                if isinstance(event, EnginePing) and self.auto_pong:
                    await self.send_raw(self.conn.pong_for(event))
                if isinstance(event, EventReceived) and self.handler is not None:
                    task = asyncio.create_task(self.handler(self, event))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        self.close_code = self.ws.close_code
        self._new_event.set()

    @property
    def closed(self) -> bool:
        return self._reader is not None and self._reader.done()

    async def wait_for(self, kind: type, predicate: Any = None, within: float = 5.0) -> Any:
        deadline = time.monotonic() + within
        seen = 0
        while True:
            for event in self.events[seen:]:
                if isinstance(event, kind) and (predicate is None or predicate(event)):
                    return event
            seen = len(self.events)
            if self.closed:
                raise AssertionError(
                    f"connection closed (code {self.close_code}) before {kind.__name__}: {self.events}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind.__name__} within {within}s; got {self.events}")
            self._new_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_event.wait(), remaining)

    async def wait_closed(self, within: float = 5.0) -> None:
        assert self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), within)

    def notifications(self) -> list[dict[str, Any]]:
        return [
            e.event.args[0]
            for e in self.events
            if isinstance(e, EventReceived) and e.event.name == "notification" and e.event.args
        ]

    async def ping(self, value: int = 1) -> None:
        await self.send_raw(self.conn.primus_ping(value))

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 2)
        if self.http is not None:
            await self.http.close()


async def answer_by_stream(
    peer: WsPeer,
    received: EventReceived,
    *,
    status: int = 200,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    frame: bytes | None = None,
) -> int:
    """POST the answer of a streamed request back to the server; returns the POST's status."""
    request = received.event.args[0]
    stream_id = request["streamingID"]
    data = (
        frame
        if frame is not None
        else encode_head(status, headers or {"content-type": "text/plain"}) + body
    )
    assert peer.http is not None
    return await post_response_data(peer.http, peer.base_url, peer.token, stream_id, data)


async def post_response_data(
    http: aiohttp.ClientSession, base_url: str, token: str, stream_id: str, data: bytes
) -> int:
    """POST a response-stream frame to ``/response-data``; returns the POST's status."""
    async with http.post(
        f"{base_url}/response-data/{token}/{stream_id}",
        data=data,
        headers={"content-type": CONTENT_TYPE},
    ) as resp:
        await resp.read()
        return resp.status


async def answer_by_ack(
    peer: WsPeer, received: EventReceived, *, status: int = 200, body: str = ""
) -> None:
    assert received.event.ack_id is not None
    await peer.send_raw(
        peer.conn.send_ack(
            received.event.ack_id,
            {"status": status, "headers": {"content-type": "text/plain"}, "body": body},
        )
    )


async def echo_handler(peer: WsPeer, received: EventReceived) -> None:
    """Answer every request with its own URL, by stream or by ack as the server asked."""
    if received.event.name != "request":
        return
    request = received.event.args[0]
    text = f"{peer.role}:{request['method']} {request['url']}"
    if request.get("streamingID"):
        await answer_by_stream(peer, received, body=text.encode())
    else:
        await answer_by_ack(peer, received, body=text)


async def polling_get(http: aiohttp.ClientSession, url: str, eio: int) -> list[Any]:
    async with http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return decode_payload(await resp.text(), eio)


async def polling_post(
    http: aiohttp.ClientSession, url: str, packets: list[str], eio: int
) -> tuple[int, str]:
    async with http.post(url, data=encode_payload(packets, eio).encode()) as resp:
        return resp.status, await resp.text()


__all__ = [
    "PrimusPing",
    "WsPeer",
    "answer_by_ack",
    "answer_by_stream",
    "echo_handler",
    "identify_payload",
]
