"""Pending streamed answers: ``streamingID`` -> the caller waiting on ``/broker/<token>/...``.

The relay handler registers an id, sends the ``request`` event and waits. The client's
``POST /response-data/<token>/<id>`` handler then writes the head and every body chunk straight
into the waiting caller's response, awaiting each write, so a slow caller slows the POST down
(back-pressure over TCP) and no body is ever held whole. Ids expire after ``ttl`` seconds.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from broker_server.client_socket import ClientSocket


class StreamFailed(Exception):
    """The streamed answer could not be delivered; the message says why."""


class StreamTimedOut(StreamFailed):
    """The streamed answer did not arrive, or not whole, within its time bounds."""


@dataclass(eq=False)
class PendingStream:
    id: str
    token: str
    caller: web.Request
    session: ClientSocket
    expires: float
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    response: web.StreamResponse | None = None
    attached: bool = False
    expected_length: int | None = None
    started: float = field(default_factory=time.monotonic)
    #: time.monotonic() past which the caller's whole request has timed out
    deadline: float = math.inf

    def fail(self, message: str, *, timed_out: bool = False) -> None:
        if not self.done.done():
            error = StreamTimedOut(message) if timed_out else StreamFailed(message)
            self.done.set_exception(error)
            # the waiting relay handler retrieves it; avoid "exception never retrieved" noise
            self.done.exception()

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class StreamRegistry:
    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self._streams: dict[str, PendingStream] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def create(self, token: str, caller: web.Request, session: ClientSocket) -> PendingStream:
        stream = PendingStream(
            str(uuid.uuid4()), token, caller, session, time.monotonic() + self.ttl
        )
        self._streams[stream.id] = stream
        return stream

    def get(self, stream_id: str) -> PendingStream | None:
        stream = self._streams.get(stream_id)
        if stream is not None and time.monotonic() > stream.expires:
            self.discard(stream, "streaming id expired")
            return None
        return stream

    def discard(
        self, stream: PendingStream, reason: str | None = None, *, timed_out: bool = False
    ) -> None:
        if self._streams.get(stream.id) is stream:
            del self._streams[stream.id]
        if reason is not None:
            stream.fail(reason, timed_out=timed_out)

    def fail_session(self, session: ClientSocket) -> None:
        """A socket closed: streams it never started answering cannot arrive any more."""
        for stream in list(self._streams.values()):
            if stream.session is session and not stream.attached:
                self.discard(stream, "the broker client disconnected before answering")

    def expire(self) -> int:
        now = time.monotonic()
        gone = [s for s in self._streams.values() if now > s.expires]
        for stream in gone:
            self.discard(stream, "streaming id expired")
        return len(gone)
