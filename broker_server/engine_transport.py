"""``/primus/<token>/``: engine.io over HTTP long-polling and websocket (v4, and v3 accepted).

The real snyk-broker client opens with a polling handshake and then upgrades: websocket
``2probe`` -> ``3probe``, the pending poll is released with a noop, the client sends ``5`` and
the session continues on the websocket. A client may also open a websocket directly (no sid);
its OPEN packet then lists no upgrades. Everything inside the packets is the protocol core's job.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aiohttp import WSMsgType, web

from broker_server.body_reader import read_body
from broker_server.budget import Account, OverBudget, Refusal
from broker_server.metered_websocket import MeteredWebSocket
from shared.engineio import encode_payload
from shared.logging import get_logger

if TYPE_CHECKING:
    from broker_server.budget import ByteBudget
    from broker_server.client_socket import ClientSocket
    from broker_server.metrics import ServerMetrics
    from broker_server.settings import Settings
    from broker_server.tokens import TokenRegistry

log = get_logger("broker_server.engine")

# engine.io's own error codes and messages (server.ts `errorMessages`)
ENGINE_ERRORS = {
    0: "Transport unknown",
    1: "Session ID unknown",
    2: "Bad handshake method",
    3: "Bad request",
    4: "Forbidden",
    5: "Unsupported protocol version",
}


def engine_error(code: int, detail: str | None = None, status: int = 400) -> web.Response:
    message = ENGINE_ERRORS[code] + (f": {detail}" if detail else "")
    return web.json_response({"code": code, "message": message}, status=status)


@dataclass(frozen=True, slots=True)
class EngineLimits:
    """The settings the transport reads."""

    #: open sockets one token may have (BROKER_SERVER_MAX_CONNECTIONS_PER_TOKEN)
    max_connections_per_token: int
    #: largest engine.io packet or polling payload from a client (SOCKET_MAX_RESPONSE_LENGTH)
    max_message: int

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineLimits:
        return cls(
            max_connections_per_token=settings.BROKER_SERVER_MAX_CONNECTIONS_PER_TOKEN,
            max_message=settings.SOCKET_MAX_RESPONSE_LENGTH,
        )


@dataclass(frozen=True, slots=True)
class SocketOpening:
    """A client socket to open, as its first request and the transport describe it."""

    token: str
    eio: int
    #: "polling" or "websocket"
    transport: str
    #: the bytes the socket's messages hold, charged to the token's budget
    account: Account
    #: ``?connection_role=`` of the first request
    role_hint: str | None
    #: ``x-snyk-broker-client-id`` of the first request
    client_id_header: str | None


class SocketTable(Protocol):
    """The open client sockets by engine.io sid (:class:`broker_server.server.BrokerServer`)."""

    def find(self, sid: str) -> ClientSocket | None: ...

    def open_sessions(self, token: str) -> int: ...

    def new_session(self, opening: SocketOpening) -> ClientSocket: ...


class EngineTransport:
    """The ``/primus`` handler; what it needs of the server is passed in, nothing more."""

    def __init__(
        self,
        *,
        limits: EngineLimits,
        metrics: ServerMetrics,
        tokens: TokenRegistry,
        budget: ByteBudget,
        sockets: SocketTable,
    ) -> None:
        self.limits = limits
        self.metrics = metrics
        self.tokens = tokens
        self.budget = budget
        self.sockets = sockets

    async def handle(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        eio_text = query.get("EIO", "3")
        if eio_text not in ("3", "4"):
            return engine_error(5, f"EIO={eio_text[:10]!r}; 3 and 4 are supported")
        eio = int(eio_text)
        transport = query.get("transport")
        if transport not in ("polling", "websocket"):
            return engine_error(0)
        token = self.tokens.lookup(request.match_info["token"])
        if token is None:
            self.metrics.faults.labels("unknown-token").inc()
            log.warning("socket refused: unknown broker token", path="/primus/<token>/")
            return engine_error(4, "unknown broker token", status=401)
        sid = query.get("sid")
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if sid is None and (refused := self._too_many(token)) is not None:
            return refused
        if transport == "websocket":
            if not upgrade:
                return engine_error(3, "transport=websocket without a websocket Upgrade header")
            if sid is None:
                return await self._direct_websocket(request, token, eio)
            session = self.sockets.find(sid)
            if session is None or session.token != token:
                return engine_error(1)
            return await self._upgrade(request, session)
        if sid is None:
            if request.method != "GET":
                return engine_error(2)
            account = self.budget.account(token)
            session = self.sockets.new_session(opening(request, token, eio, "polling", account))
            await session.start(upgrades=["websocket"])
            return await self._poll(request, session)
        session = self.sockets.find(sid)
        if session is None or session.token != token:
            return engine_error(1)
        if request.method == "GET":
            return await self._poll(request, session)
        if request.method == "POST":
            return await self._post(request, session)
        return engine_error(3, f"method {request.method} on a polling session")

    def _too_many(self, token: str) -> web.Response | None:
        """429 when ``token`` already has as many open sockets as it may."""
        limit = self.limits.max_connections_per_token
        if self.sockets.open_sessions(token) < limit:
            return None
        self.metrics.refusals.labels("connections").inc()
        log.warning(
            "socket refused: too many connections for the token",
            limit=limit,
            **self.tokens.describe(token),
        )
        return web.json_response(
            {"code": 4, "message": f"too many connections for this broker token (limit {limit})"},
            status=429,
            headers={"Retry-After": "5"},
        )

    def _refused(self, account: Account, session: ClientSocket | None, refusal: Refusal) -> None:
        self.metrics.refusals.labels(refusal.scope).inc()
        describe = session.describe() if session is not None else {}
        log.warning(
            "client message refused",
            reason=refusal.message,
            **describe,
            **self.tokens.describe(account.token),
        )

    # -- polling ---------------------------------------------------------------------------

    async def _poll(self, request: web.Request, session: ClientSocket) -> web.Response:
        if session.ws is not None:
            return engine_error(3, "this session was upgraded to a websocket; polling has ended")
        if session.polling_active:
            await session.close("overlapping polling requests")
            return engine_error(3, "overlapping GET on a polling session")
        session.polling_active = True
        try:
            while (
                not session.outbox
                and not session.closed
                and session.ws is None
                and not session.upgrading
            ):
                try:
                    await asyncio.wait_for(session.outbox_event.wait(), 1.0)
                except TimeoutError:
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        # as engine.io: a pending poll whose connection went away ends the
                        # session, so requests stop being routed to a client that is gone
                        session.polling_active = False
                        await session.close("poll connection closed prematurely")
                        return web.Response(status=499)
            packets = session.take_outbox()
        except asyncio.CancelledError:
            # the server cancels handlers of lost connections (when configured to): same case
            session.spawn_close("poll connection closed prematurely")
            raise
        finally:
            session.polling_active = False
        if not packets:
            packets = [session.conn.noop()]
        return web.Response(
            text=encode_payload(packets, session.eio),
            content_type="text/plain",
            charset="utf-8",
        )

    async def _post(self, request: web.Request, session: ClientSocket) -> web.Response:
        limit = self.limits.max_message
        if request.content_length is not None and request.content_length > limit:
            return await self._oversized(session, request.content_length, limit)
        try:
            body = await read_body(request.content, limit, session.account)
        except OverBudget as exc:
            self._refused(session.account, session, exc.refusal)
            await session.close(exc.refusal.message)
            return web.json_response(
                {"code": 3, "message": exc.refusal.message},
                status=exc.refusal.http_status,
                headers={"Retry-After": "1"},
            )
        if body is None:
            return await self._oversized(session, None, limit)
        try:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                await session.fault("polling payload is not UTF-8 text")
                return engine_error(3, "payload is not UTF-8 text")
            events = session.conn.receive_payload(text)
            await session.handle(events)
        finally:
            session.account.give(len(body))
        return web.Response(text="ok", content_type="text/html")

    async def _oversized(self, session: ClientSocket, size: int | None, limit: int) -> web.Response:
        self.metrics.faults.labels("oversized").inc()
        what = f"payload of {size} bytes" if size is not None else "payload"
        log.warning("client message too large", size=size, limit=limit, **session.describe())
        await session.close(f"{what} exceeds maxPayload {limit}")
        return web.json_response(
            {"code": 3, "message": f"{what} exceeds the limit of {limit} bytes"}, status=413
        )

    # -- websocket ------------------------------------------------------------------------

    def _websocket(self, account: Account, session: ClientSocket | None = None) -> MeteredWebSocket:
        # a little headroom: the limit applies to the engine.io packet, the frame adds the type digit
        return MeteredWebSocket(
            account,
            lambda refusal: self._refused(account, session, refusal),
            max_msg_size=self.limits.max_message + 16,
            autoping=True,
            compress=False,
        )

    async def _direct_websocket(
        self, request: web.Request, token: str, eio: int
    ) -> web.WebSocketResponse:
        account = self.budget.account(token)
        ws = self._websocket(account)
        try:
            await ws.prepare(request)
        except BaseException:
            account.close()
            raise
        session = self.sockets.new_session(opening(request, token, eio, "websocket", account))
        session.ws = ws
        await session.start(upgrades=[])
        await self._run_websocket(session, ws)
        return ws

    async def _upgrade(self, request: web.Request, session: ClientSocket) -> web.StreamResponse:
        if session.ws is not None or session.upgrade_ws is not None or session.closed:
            return engine_error(3, "session already upgraded or upgrading")
        ws = self._websocket(session.account, session)
        await ws.prepare(request)
        session.upgrade_ws = ws
        await self._run_websocket(session, ws)
        return ws

    async def _run_websocket(self, session: ClientSocket, ws: MeteredWebSocket) -> None:
        try:
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    try:
                        await session.handle(session.conn.receive(message.data), via=ws)
                    finally:
                        del message  # the bytes are given back: let them go too
                        ws.message_done()
                elif message.type == WSMsgType.ERROR:
                    self.metrics.faults.labels("websocket").inc()
                    log.warning(
                        "websocket error from client",
                        error=str(ws.exception()),
                        **session.describe(),
                    )
        finally:
            ws.release_all()
            if session.ws is ws:
                reason = "websocket closed by the client"
                if ws.refusal is not None:
                    reason = ws.refusal.message
                elif ws.exception() is not None:
                    reason = f"websocket error: {ws.exception()}"
                await session.close(reason)
            elif session.upgrade_ws is ws:
                session.upgrade_ws = None  # upgrade abandoned; polling goes on
                session.upgrading = False


def opening(
    request: web.Request, token: str, eio: int, transport: str, account: Account
) -> SocketOpening:
    return SocketOpening(
        token=token,
        eio=eio,
        transport=transport,
        account=account,
        role_hint=request.query.get("connection_role"),
        client_id_header=request.headers.get("x-snyk-broker-client-id"),
    )


def new_sid() -> str:
    return uuid.uuid4().hex
