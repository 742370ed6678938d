"""A server websocket whose incoming messages are charged to a byte budget before they arrive.

aiohttp assembles each message whole (up to ``max_msg_size``) before handing it over, so
charging a message once it has been received would be too late: 32 sockets of one token each
sending 21 MB held a gigabyte. Here every byte the socket receives first passes a
:class:`~broker_server.frame_meter.FrameMeter`; a data frame's declared length is charged to the
socket's :class:`~broker_server.budget.Account` when its header is in. A frame the budget cannot
hold is refused: the bytes are dropped and the socket is closed with 1013 (try again later) and
the reason. A message's charge is given back once it has been handled (:meth:`message_done`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, web

from broker_server.budget import Account, Refusal
from broker_server.frame_meter import FrameMeter

#: seconds the refused peer gets to answer our close frame (its own close is among the dropped bytes)
REFUSED_CLOSE_WAIT = 1.0


class MeteredWebSocket(web.WebSocketResponse):
    def __init__(
        self, account: Account, on_refused: Callable[[Refusal], None], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.account = account
        self.refusal: Refusal | None = None
        self._on_refused = on_refused
        self._meter = FrameMeter()
        self._cap: int = kwargs.get("max_msg_size", 4 * 1024 * 1024)
        self._current = 0  # charged to the message still arriving
        self._received: deque[int] = deque()  # charged to whole messages not handled yet
        self._closer: asyncio.Task[None] | None = None

    def _post_start(self, request: web.BaseRequest, protocol: str | None, writer: Any) -> None:
        # aiohttp feeds the bytes that came with the upgrade request to its reader inside
        # _post_start; read them too, then sit between the connection and that reader. (Private
        # aiohttp surface: the budget tests fail loudly should it change.)
        handler: Any = request.protocol
        early = bytes(getattr(handler, "_message_tail", b""))
        super()._post_start(request, protocol, writer)
        handler._payload_parser = _MeteredReader(handler._payload_parser, self)
        if early:
            self.charge(early)

    def charge(self, data: bytes) -> bool:
        """Charge the frames whose headers ``data`` completes; False once refused."""
        if self.refusal is not None:
            return False
        if self.account.closed:
            return False  # the session has ended: what still arrives is dropped
        for header in self._meter.feed(data):
            # control frames are at most 125 bytes; a frame over the message cap is aiohttp's to
            # refuse (1009) before it buffers any of it
            if not header.is_data or header.length >= self._cap:
                continue
            refusal = self.account.try_take(header.length)
            if refusal is not None:
                self._refuse(refusal)
                return False
            self._current += header.length
            if header.fin:
                self._received.append(self._current)
                self._current = 0
        return True

    def message_done(self) -> None:
        """The oldest received message has been handled: give its bytes back."""
        if self._received:
            self.account.give(self._received.popleft())

    def release_all(self) -> None:
        self.account.give(self._current + sum(self._received))
        self._current = 0
        self._received.clear()

    def _refuse(self, refusal: Refusal) -> None:
        self.refusal = refusal
        self._on_refused(refusal)
        self._closer = asyncio.get_running_loop().create_task(self._close_refused(refusal))

    async def _close_refused(self, refusal: Refusal) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self.close(code=WSCloseCode.TRY_AGAIN_LATER, message=refusal.message.encode()),
                REFUSED_CLOSE_WAIT,
            )


class _MeteredReader:
    """Stands in for aiohttp's websocket reader on the connection: meter, then pass on or drop."""

    def __init__(self, inner: Any, ws: MeteredWebSocket) -> None:
        self._inner = inner
        self._ws = ws

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if not self._ws.charge(data):
            return False, b""
        result: tuple[bool, bytes] = self._inner.feed_data(data)
        return result

    def feed_eof(self) -> None:
        self._inner.feed_eof()
