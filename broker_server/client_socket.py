"""One client socket on the server: engine.io session state plus the broker conversation.

Transport plumbing (long-polling GET/POST, websocket frames) lives in
:mod:`broker_server.engine_transport`; it hands every decoded event to :meth:`ClientSocket.handle`.
Outgoing packets go through :meth:`ClientSocket.send`, which writes to the websocket when the
session has one and otherwise queues them for the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from shared import primus
from shared.broker_message import body_size, error_reply, reply
from shared.broker_protocol import (
    SERVER_CAPABILITIES,
    AckReceived,
    BrokerConnection,
    ClientIdentified,
    Closed,
    DataReceived,
    EnginePing,
    EnginePong,
    EventReceived,
    Noop,
    PrimusIdQuery,
    PrimusPing,
    PrimusPong,
    ProtocolEvent,
    ProtocolFault,
    ServerClose,
    Upgraded,
    version_below,
)
from shared.emitter import Ack
from shared.engineio import OpenHandshake
from shared.logging import get_logger
from shared.protocol_error import ProtocolError

if TYPE_CHECKING:
    from broker_server.budget import Account
    from broker_server.metrics import ServerMetrics
    from broker_server.settings import Settings
    from broker_server.tokens import TokenRegistry

log = get_logger("broker_server.client_socket")

#: after this many malformed packets in a row the peer is cut off
MAX_CONSECUTIVE_FAULTS = 20


@dataclass(frozen=True)
class SocketHooks:
    """What a client socket needs from the server that holds it, and nothing more."""

    settings: Settings
    metrics: ServerMetrics
    tokens: TokenRegistry
    #: a client's ``request``/``service`` event argument to the upstream, with the socket's
    #: token; returns the ack reply
    forward: Callable[[str, Any], Awaitable[dict[str, Any]]]
    #: the socket identified with a known token and a supported version
    identified: Callable[[ClientSocket], None]
    #: the socket moved from polling to websocket
    transport_changed: Callable[[], None]
    #: the socket closed (called once)
    closed: Callable[[ClientSocket], None]


class SocketClosed(Exception):
    """The socket closed while a request was waiting on it."""


class ClientSocket:
    def __init__(
        self,
        hooks: SocketHooks,
        *,
        account: Account,
        token: str,
        sid: str,
        eio: int,
        transport: str,
        role_hint: str | None,
        client_id_header: str | None,
    ) -> None:
        self.hooks = hooks
        self.settings = hooks.settings
        self.metrics = hooks.metrics
        self.tokens = hooks.tokens
        #: bytes in flight charged to this socket (see broker_server.budget)
        self.account = account
        self.token = token
        self.sid = sid
        self.eio = eio
        self.transport = transport
        self.role_hint = role_hint
        self.client_id_header = client_id_header
        settings = hooks.settings
        self.conn = BrokerConnection(
            "server", eio=eio, max_message_bytes=settings.SOCKET_MAX_RESPONSE_LENGTH
        )
        self.outbox: list[str] = []
        self.outbox_event = asyncio.Event()
        self.ws: web.WebSocketResponse | None = None
        self.upgrade_ws: web.WebSocketResponse | None = None
        self.polling_active = False
        self.upgrading = False
        self.closed = False
        self.close_reason: str | None = None
        self.identity: ClientIdentified | None = None
        self.pending_acks: dict[int, asyncio.Future[Ack]] = {}
        self.pong_event = asyncio.Event()
        self.last_received = time.monotonic()
        self.last_client_ping = time.monotonic()
        self.opened_at = time.time()
        self.opened_monotonic = time.monotonic()
        self.faults_in_a_row = 0
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._closing = False

    # -- identity -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.identity is not None and self.identity.metadata.ready

    @property
    def capabilities(self) -> list[str]:
        if self.identity is None:
            return []
        return self.identity.metadata.capabilities or []

    @property
    def role(self) -> str | None:
        if self.identity is not None and self.identity.metadata.role:
            return self.identity.metadata.role
        return self.role_hint

    @property
    def client_key(self) -> tuple[str, str] | None:
        if self.identity is None or not self.identity.metadata.client_id:
            return None
        return (self.identity.metadata.client_id, self.role or "")

    def describe(self) -> dict[str, Any]:
        return {"sid": self.sid, "transport": self.transport, "eio": self.eio, "role": self.role}

    # -- life cycle -----------------------------------------------------------------------

    async def start(self, upgrades: list[str]) -> None:
        settings = self.settings
        handshake = OpenHandshake(
            sid=self.sid,
            upgrades=upgrades,
            pingInterval=settings.SOCKET_PING_INTERVAL,
            pingTimeout=settings.SOCKET_PING_TIMEOUT,
            maxPayload=settings.SOCKET_MAX_RESPONSE_LENGTH,
        )
        await self.send(self.conn.open(handshake))
        # snyk-broker's server identifies itself right away, without waiting for the client
        data, _ = self.conn.send_event("identify", {"capabilities": list(SERVER_CAPABILITIES)})
        await self.send(data)
        self._heartbeat = asyncio.create_task(self._heartbeat_loop())

    async def send(self, text: str) -> None:
        if self.closed:
            return
        ws = self.ws
        if ws is not None:
            try:
                async with self._send_lock:
                    await ws.send_str(text)
            except (ConnectionError, RuntimeError) as exc:
                await self.close(f"websocket send failed: {exc}")
            return
        self.outbox.append(text)
        self.outbox_event.set()

    def take_outbox(self) -> list[str]:
        packets, self.outbox = self.outbox, []
        self.outbox_event.clear()
        return packets

    async def close(self, reason: str, *, server_close: bool = False) -> None:
        if self.closed or self._closing:
            return
        self._closing = True
        if server_close:
            await self.send(self.conn.server_close())
        await self.send(self.conn.close_packet())
        self.closed = True
        self.close_reason = reason
        self.outbox_event.set()
        self.hooks.closed(self)
        self.account.close()
        for future in self.pending_acks.values():
            if not future.done():
                future.set_exception(SocketClosed(reason))
                future.exception()
        self.pending_acks.clear()
        current = asyncio.current_task()
        if self._heartbeat is not None and self._heartbeat is not current:
            self._heartbeat.cancel()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        for ws in (self.ws, self.upgrade_ws):
            if ws is not None and not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
        log.info(
            "client socket closed",
            reason=reason,
            **self.describe(),
            **self.tokens.describe(self.token),
        )

    def spawn_close(self, reason: str) -> None:
        """Close from a context that cannot await (a cancelled handler)."""
        self.spawn(self.close(reason))

    async def notify(self, level: str, message: str) -> None:
        data, _ = self.conn.send_event("notification", {"level": level, "message": message})
        await self.send(data)

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error(
                "request handling failed", error=f"{type(exc).__name__}: {exc}", **self.describe()
            )

    async def _heartbeat_loop(self) -> None:
        settings = self.settings
        interval = settings.SOCKET_PING_INTERVAL / 1000
        timeout = settings.SOCKET_PING_TIMEOUT / 1000
        idle_limit = settings.PRIMUS_TIMEOUT / 1000
        try:
            while not self.closed:
                if self.eio == 4:
                    # v4: the server pings and wants a pong within pingTimeout
                    await asyncio.sleep(interval)
                    self.pong_event.clear()
                    await self.send(self.conn.engine_ping())
                    try:
                        await asyncio.wait_for(self.pong_event.wait(), timeout)
                    except TimeoutError:
                        await self.close(f"no engine.io pong within {timeout:g}s")
                        return
                else:
                    # v3: the client pings; silence for pingInterval + pingTimeout ends the socket
                    await asyncio.sleep(min(interval, 1.0))
                    if time.monotonic() - self.last_client_ping > interval + timeout:
                        await self.close(f"no engine.io ping within {interval + timeout:g}s")
                        return
                if self.ready and time.monotonic() - self.last_received > idle_limit:
                    # Primus' server timeout: an identified spark that sends nothing is dead
                    await self.close(f"no data from the client for {idle_limit:g}s")
                    return
                if self.identity is None and time.monotonic() - self.opened_monotonic > idle_limit:
                    # a socket that never identifies would keep its token answering 503
                    await self.notify("error", f"no identify within {idle_limit:g}s")
                    await self.close(f"no identify within {idle_limit:g}s", server_close=True)
                    return
        except asyncio.CancelledError:
            pass

    # -- incoming -------------------------------------------------------------------------

    async def handle(
        self, events: list[ProtocolEvent], via: web.WebSocketResponse | None = None
    ) -> None:
        for event in events:
            if self.closed:
                return
            if not isinstance(event, (EnginePing, EnginePong, Noop, Upgraded)):
                # Primus' idle timer sees only messages, not engine.io heartbeats
                self.last_received = time.monotonic()
            if not isinstance(event, ProtocolFault):
                self.faults_in_a_row = 0
            match event:
                case EnginePing(data="probe"):
                    await self._probe(via)
                case EnginePing():
                    self.last_client_ping = time.monotonic()
                    self.metrics.heartbeats.labels("engine_ping").inc()
                    await self.send(self.conn.pong_for(event))
                case EnginePong():
                    self.metrics.heartbeats.labels("engine_pong").inc()
                    self.pong_event.set()
                case Upgraded():
                    await self._upgraded(via)
                case Noop() | PrimusPong() | ServerClose():
                    pass
                case PrimusPing():
                    self.metrics.heartbeats.labels("primus_ping").inc()
                    await self.send(self.conn.pong_for(event))
                case PrimusIdQuery():
                    await self.send(self.conn.send_data(primus.id_text(self.sid)))
                case ClientIdentified():
                    await self._identified(event)
                case EventReceived():
                    await self._event(event)
                case AckReceived():
                    future = self.pending_acks.pop(event.ack.ack_id, None)
                    if future is not None and not future.done():
                        future.set_result(event.ack)
                case DataReceived():
                    await self.fault(
                        "message is neither a Primus control string nor an emitter packet"
                    )
                case Closed():
                    await self.close("client closed the socket")
                case ProtocolFault():
                    await self.fault(event.message)

    async def fault(self, message: str) -> None:
        self.metrics.faults.labels("socket").inc()
        self.faults_in_a_row += 1
        log.warning("protocol error from client", error=message, **self.describe())
        await self.notify("error", f"protocol error: {message}")
        if self.faults_in_a_row >= MAX_CONSECUTIVE_FAULTS:
            await self.close(f"{self.faults_in_a_row} protocol errors in a row", server_close=True)

    async def _probe(self, via: web.WebSocketResponse | None) -> None:
        if via is None or via is self.ws:
            # a probe on the active transport is just a ping
            await self.send(self.conn.pong_for(EnginePing("probe")))
            return
        await via.send_str(self.conn.pong_for(EnginePing("probe")))
        # the client now pauses polling: it waits for its pending poll to return. Wake a poll
        # that is waiting here, and (as engine.io does) answer a poll that is still on its way
        # with a noop at once, else the upgrade would wait for the next ping.
        self.upgrading = True
        if self.polling_active and not self.outbox:
            self.outbox.append(self.conn.noop())
            self.outbox_event.set()

    async def _upgraded(self, via: web.WebSocketResponse | None) -> None:
        if via is None or self.ws is not None:
            await self.fault("engine.io UPGRADE outside a websocket upgrade")
            return
        self.ws = via
        self.upgrade_ws = None
        self.upgrading = False
        self.transport = "websocket"
        self.hooks.transport_changed()
        pending = [p for p in self.take_outbox() if p != self.conn.noop()]
        self.outbox_event.set()  # a poll still waiting ends with a noop
        for packet in pending:
            await self.send(packet)
        log.debug("client upgraded to websocket", **self.describe())

    async def _identified(self, event: ClientIdentified) -> None:
        settings = self.settings
        if not self.tokens.same(event.token, self.token):
            await self.notify("error", "identify token does not match the token of this connection")
            await self.close("identify with a different token", server_close=True)
            return
        version = event.metadata.version
        if version is not None:
            try:
                too_old = version_below(version, settings.MINIMAL_SUPPORTED_BROKER_VERSION)
                old = version_below(version, settings.MINIMAL_RECOMMENDED_BROKER_VERSION)
            except ProtocolError as exc:
                await self.notify(
                    "error", f"{exc}; cannot check it against the minimal supported version"
                )
                await self.close("client version is not semver", server_close=True)
                return
            if too_old:
                await self.notify(
                    "error",
                    f"Broker client version {version} is not supported any more; the minimal supported "
                    f"version is {settings.MINIMAL_SUPPORTED_BROKER_VERSION}. Please upgrade.",
                )
                await self.close(f"client version {version} below the minimum", server_close=True)
                return
            if old:
                await self.notify(
                    "warning",
                    f"Broker client version {version} is outdated; please upgrade to "
                    f"{settings.MINIMAL_RECOMMENDED_BROKER_VERSION} or later.",
                )
        self.identity = event
        self.hooks.identified(self)
        log.info(
            "client identified",
            version=version,
            capabilities=event.metadata.capabilities,
            legacy=event.legacy,
            ready=self.ready,
            **self.describe(),
            **self.tokens.describe(self.token),
        )

    async def _event(self, received: EventReceived) -> None:
        event = received.event
        if event.name in ("request", "service"):
            if event.ack_id is None:
                await self.fault(f"{event.name} event without an ack id cannot be answered")
                return
            # the body stays in memory until the upstream has answered: charge it meanwhile
            first = event.args[0] if event.args else None
            size = body_size(first.get("body") if isinstance(first, dict) else None)
            refusal = self.account.try_take(size)
            if refusal is not None:
                self.metrics.refusals.labels(refusal.scope).inc()
                log.warning("client callback refused", reason=refusal.message, **self.describe())
                busy = error_reply(refusal.http_status, "SERVER_BUSY", refusal.message)
                busy["headers"]["retry-after"] = "1"
                await self.send(self.conn.send_ack(event.ack_id, busy))
                return
            self.spawn(self._answer_upstream(event.ack_id, event.args, size))
        elif event.name in ("client-event", "terminate"):
            log.info("client event", event_name=event.name, **self.describe())
        else:
            log.debug("ignoring client event", event_name=event.name, **self.describe())
            if event.ack_id is not None:
                message = {"message": f"unsupported event {event.name}"}
                body = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
                await self.send(self.conn.send_ack(event.ack_id, reply(501, {}, body)))

    async def _answer_upstream(self, ack_id: int, args: list[Any], charged: int) -> None:
        try:
            answer = await self.hooks.forward(self.token, args[0] if args else None)
        finally:
            self.account.give(charged)
        try:
            data = self.conn.send_ack(ack_id, answer)
        except ProtocolError as exc:
            log.error("cannot encode the upstream answer", error=str(exc), **self.describe())
            data = self.conn.send_ack(ack_id, reply(502, {}, str(exc)))
        await self.send(data)

    # -- requests to the client -----------------------------------------------------------

    async def request_with_ack(self, payload: dict[str, Any], wait_seconds: float) -> Ack:
        data, ack_id = self.conn.send_event("request", payload, want_ack=True)
        assert ack_id is not None
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self.pending_acks[ack_id] = future
        await self.send(data)
        try:
            return await asyncio.wait_for(future, wait_seconds)
        finally:
            if self.pending_acks.pop(ack_id, None) is not None:
                self.conn.forget_ack(ack_id)

    async def request_streamed(self, payload: dict[str, Any]) -> None:
        data, _ = self.conn.send_event("request", payload)
        await self.send(data)
