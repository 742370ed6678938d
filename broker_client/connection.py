"""One websocket to the broker server (primary or secondary): connect, identify, keep alive.

A thin asyncio driver over :class:`shared.broker_protocol.BrokerConnection`: frames in, events
out; frames to write come from the same state machine. Reconnects with jittered back-off
(:mod:`broker_client.reconnect`) until the server says ``primus::server::close``.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from broker_client.reconnect import Backoff
from broker_client.settings import Settings
from shared import broker_protocol as bp
from shared.accept_rules import AcceptRules
from shared.emitter import Event
from shared.logging import get_logger
from shared.protocol_error import ProtocolError
from shared.redaction import excerpt, hash_token, mask_token

log = get_logger("broker_client.connection")

#: Largest websocket message accepted (a request with a 10 MB body is ~14 MB of base64).
MAX_MESSAGE = 32 * 1024 * 1024
WIRE_LOG_CHARS = 400
#: EJSON binary bodies in a frame: base64 at any alignment hides a secret from redaction, so
#: the wire log shows their size only
_BINARY = re.compile(r'("\$binary"\s*:\s*")([A-Za-z0-9+/=]*)"')


class ConnectionLost(ConnectionError):
    """The socket closed while an answer was awaited."""


class OutboxFull(ConnectionError):
    """Disconnected and the bounded outgoing buffer is full."""


class ReconnectExhausted(ConnectionError):
    """BROKER_CLIENT_RECONNECT_MAX_ATTEMPTS reconnects failed in a row."""


@dataclass
class AckHandle:
    """Where to send the answer to one event: the socket generation that asked."""

    connection: ServerConnection
    protocol: bp.BrokerConnection
    ws: ClientConnection
    ack_id: int

    async def send(self, *args: Any) -> bool:
        try:
            data = self.protocol.send_ack(self.ack_id, *args)
        except ProtocolError as exc:
            log.error("cannot answer event", error=str(exc), role=self.connection.role)
            return False
        try:
            await self.ws.send(data)
        except websockets.ConnectionClosed:
            log.warning("socket closed before the answer could be sent", role=self.connection.role)
            return False
        self.connection.wire("sent", data)
        return True


EventHandler = Callable[["ServerConnection", Event, "AckHandle | None"], Awaitable[None] | None]


class ServerConnection:
    def __init__(
        self,
        *,
        settings: Settings,
        rules: Callable[[], AcceptRules],
        role: str,
        client_id: str,
        version: str,
        on_event: EventHandler,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.role = role
        self.client_id = client_id
        self.version = version
        self.on_event = on_event
        self.token = settings.BROKER_TOKEN
        self.backoff = Backoff(
            cap_seconds=settings.BROKER_CLIENT_RECONNECT_MAX_DELAY / 1000,
            max_attempts=settings.BROKER_CLIENT_RECONNECT_MAX_ATTEMPTS,
        )
        self.is_open = False
        self.server_closed = False
        self.server_capabilities: list[str] = []
        self.transport = "websocket"
        self._ws: ClientConnection | None = None
        self._protocol: bp.BrokerConnection | None = None
        self._pending: dict[int, asyncio.Future[list[Any]]] = {}
        self._outbox: collections.deque[tuple[str, tuple[Any, ...], asyncio.Future[list[Any]]]] = (
            collections.deque()
        )
        self._stop = asyncio.Event()
        self._pong = asyncio.Event()
        self._last_rx = 0.0
        self._log = log.bind(
            role=role, maskedToken=mask_token(self.token), hashedToken=hash_token(self.token)
        )

    # ------------------------------------------------------------------ public

    @property
    def server_url(self) -> str:
        return f"{self.settings.BROKER_SERVER_URL}/?connection_role={self.role}"

    @property
    def socket_url(self) -> str:
        base = self.settings.BROKER_SERVER_URL
        scheme, rest = base.split("://", 1)
        ws_scheme = "wss" if scheme == "https" else "ws"
        return (
            f"{ws_scheme}://{rest}/primus/{self.token}/"
            f"?connection_role={self.role}&EIO=4&transport=websocket"
        )

    async def run(self) -> None:
        """Connect and serve until stopped or the server closes on purpose."""
        while not self._stop.is_set():
            try:
                await self._session()
            except (OSError, TimeoutError, websockets.WebSocketException, ProtocolError) as exc:
                self._log.warning("socket connection failed", error=f"{type(exc).__name__}: {exc}")
            except Exception:
                # a bug in one session must not end the client: log it and connect again
                self._log.exception("socket session crashed")
            if self.server_closed:
                self._log.error("server closed the connection on purpose; not reconnecting")
                return
            if self._stop.is_set():
                return
            delay = self.backoff.next_delay()
            if delay is None:
                raise ReconnectExhausted(
                    f"{self.role} socket: {self.backoff.max_attempts} reconnect attempts failed"
                )
            self._log.info(
                "reconnecting",
                attempt=self.backoff.attempts,
                of=self.backoff.max_attempts or "unlimited",
                delay_seconds=round(delay, 2),
            )
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            await ws.close()

    async def request(self, name: str, *args: Any, timeout: float) -> list[Any]:  # noqa: ASYNC109
        """Send an event that wants an ack and return the ack's arguments.

        While disconnected the event waits in a bounded outbox (:class:`OutboxFull` when full).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        if self.is_open and self._ws is not None and self._protocol is not None:
            await self._emit(self._ws, self._protocol, name, args, future)
        else:
            if len(self._outbox) >= self.settings.BROKER_CLIENT_OUTBOX_LIMIT:
                raise OutboxFull(
                    f"not connected and {len(self._outbox)} messages are already waiting"
                )
            self._outbox.append((name, args, future))
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout=timeout)
        except TimeoutError:
            future.cancel()
            raise

    async def send_event(self, name: str, *args: Any) -> None:
        """Send an event that wants no ack; :class:`ConnectionLost` when the socket is down."""
        ws, protocol = self._ws, self._protocol
        if not self.is_open or ws is None or protocol is None:
            raise ConnectionLost(f"{self.role} socket is not connected")
        data, _ = protocol.send_event(name, *args)
        try:
            await ws.send(data)
        except websockets.ConnectionClosed:
            raise ConnectionLost(f"{self.role} socket closed while sending") from None
        self.wire("sent", data)

    @property
    def server_receives_post_streams(self) -> bool:
        """The server said it accepts ``POST /response-data`` (else: legacy ``chunk`` events)."""
        return "receive-post-streams" in self.server_capabilities

    def wire(self, direction: str, data: str | bytes) -> None:
        """DEBUG: wire-level detail, redacted and then cut; frames with credentials withheld."""
        if self.settings.debug:
            text = data if isinstance(data, str) else data.decode("utf-8", "replace")
            text = _BINARY.sub(lambda m: f'{m.group(1)}[{len(m.group(2))} base64 chars]"', text)
            self._log.debug(
                "wire", direction=direction, size=len(data), data=excerpt(text, WIRE_LOG_CHARS)
            )

    # ------------------------------------------------------------------ one session

    def _handshake_headers(self) -> dict[str, str]:
        return {
            "x-snyk-broker-client-id": self.client_id,
            "x-snyk-broker-client-role": self.role,
            "x-broker-client-version": self.version,
            "snyk-request-id": str(uuid.uuid4()),  # renewed on every (re)connect
        }

    def _identify(self) -> dict[str, Any]:
        s = self.settings
        return {
            "token": self.token,
            "metadata": {
                "capabilities": list(bp.CLIENT_CAPABILITIES),
                "clientId": self.client_id,
                "identifier": hashlib.sha256(self.token.encode()).hexdigest(),
                "version": self.version,
                "role": self.role,
                "clientConfig": {
                    "brokerClientId": self.client_id,
                    "version": self.version,
                    "haMode": False,
                    "debugMode": s.debug,
                    "bodyLogMode": False,
                    "credPooling": bool(
                        s.BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER_POOL
                        or s.BROKER_CLIENT_VALIDATION_BASIC_AUTH_POOL
                    ),
                    "privateCa": bool(s.NODE_EXTRA_CA_CERTS or s.SSL_CERT_FILE),
                    "tlsReject": not s.tls_verify,
                    "proxy": bool(s.HTTPS_PROXY or s.HTTP_PROXY),
                    "customAccept": s.ACCEPT is not None,
                    "insecureDownstream": False,
                    "universalBroker": False,
                },
                # read at each identify: a reload (POST /filters) reaches the next reconnect
                "filters": dict(self.rules().document),
            },
        }

    async def _session(self) -> None:
        url = self.socket_url
        s = self.settings
        connect_timeout = s.SOCKET_CONNECT_TIMEOUT / 1000
        async with websockets.connect(
            url,
            additional_headers=self._handshake_headers(),
            user_agent_header=f"Snyk Broker client {self.version}",
            proxy=s.proxy_for(url),
            ssl=s.ssl_context if url.startswith("wss:") else None,
            open_timeout=connect_timeout,
            ping_interval=None,  # engine.io and Primus carry the heartbeats
            compression=None,
            max_size=MAX_MESSAGE,
            max_queue=64,
            write_limit=1 << 20,
            close_timeout=2,
        ) as ws:
            protocol = bp.BrokerConnection("client", max_message_bytes=MAX_MESSAGE)
            self.server_capabilities = []
            first = await asyncio.wait_for(ws.recv(), timeout=connect_timeout)
            self.wire("received", first)
            opened = [e for e in protocol.receive(first) if isinstance(e, bp.Opened)]
            if not opened:
                raise ProtocolError("server did not start with an engine.io OPEN packet")
            handshake = opened[0].handshake
            identify, _ = protocol.send_event("identify", self._identify())
            await ws.send(identify)
            self.wire("sent", identify)
            self._ws, self._protocol = ws, protocol
            self.is_open = True
            self._last_rx = time.monotonic()
            self.backoff.reset()
            self._log.info("connected to broker server", server=s.BROKER_SERVER_URL)
            await self._flush_outbox(ws, protocol)
            heartbeat = asyncio.create_task(self._heartbeat(ws, protocol, handshake))
            try:
                async for message in ws:
                    self._last_rx = time.monotonic()
                    self.wire("received", message)
                    for event in protocol.receive(message):
                        await self._dispatch(ws, protocol, event)
            finally:
                self.is_open = False
                self._ws = self._protocol = None
                heartbeat.cancel()
                for future in self._pending.values():
                    if not future.done():
                        future.set_exception(ConnectionLost("socket closed before the answer"))
                self._pending.clear()
                self._log.warning(
                    "socket closed", code=ws.close_code, reason=ws.close_reason or None
                )

    async def _dispatch(
        self, ws: ClientConnection, protocol: bp.BrokerConnection, event: bp.ProtocolEvent
    ) -> None:
        match event:
            case bp.EnginePing() | bp.PrimusPing():
                await ws.send(protocol.pong_for(event))
            case bp.PrimusPong():
                self._pong.set()
            case bp.EventReceived(event=ev):
                handle = AckHandle(self, protocol, ws, ev.ack_id) if ev.ack_id is not None else None
                if ev.name == "notification":
                    self._notification(ev)
                else:
                    result = self.on_event(self, ev, handle)
                    if result is not None:
                        await result
            case bp.AckReceived(ack=ack):
                future = self._pending.pop(ack.ack_id, None)
                if future is not None and not future.done():
                    future.set_result(list(ack.args))
            case bp.ServerIdentified(capabilities=caps):
                self.server_capabilities = caps
                self._log.debug("server identified", capabilities=caps)
            case bp.ServerClose():
                self.server_closed = True
                await ws.close()
            case bp.Closed(reason=reason):
                self._log.info("server closed the engine.io session", reason=reason)
                await ws.close()
            case bp.ProtocolFault(message=message):
                # a bad packet is logged and skipped; it never takes the connection down
                self._log.warning("protocol fault", error=message)
            case _:
                pass

    def _notification(self, ev: Event) -> None:
        arg = ev.args[0] if ev.args and isinstance(ev.args[0], dict) else {}
        level = str(arg.get("level", "info"))
        message = str(arg.get("message", ""))
        method = (
            self._log.error
            if level == "error"
            else self._log.warning
            if level == "warning"
            else self._log.info
        )
        method("notification from server", level=level, message=message)

    async def _emit(
        self,
        ws: ClientConnection,
        protocol: bp.BrokerConnection,
        name: str,
        args: tuple[Any, ...],
        future: asyncio.Future[list[Any]],
    ) -> None:
        data, ack_id = protocol.send_event(name, *args, want_ack=True)
        assert ack_id is not None
        self._pending[ack_id] = future
        future.add_done_callback(functools.partial(self._forget, protocol, ack_id))
        try:
            await ws.send(data)
        except websockets.ConnectionClosed:
            if not future.done():
                future.set_exception(ConnectionLost("socket closed while sending"))
            return
        self.wire("sent", data)

    def _forget(
        self, protocol: bp.BrokerConnection, ack_id: int, future: asyncio.Future[Any]
    ) -> None:
        if future.cancelled():
            self._pending.pop(ack_id, None)
            protocol.forget_ack(ack_id)

    async def _flush_outbox(self, ws: ClientConnection, protocol: bp.BrokerConnection) -> None:
        while self._outbox:
            name, args, future = self._outbox.popleft()
            if not future.done():
                await self._emit(ws, protocol, name, args, future)

    async def _heartbeat(
        self, ws: ClientConnection, protocol: bp.BrokerConnection, handshake: Any
    ) -> None:
        s = self.settings
        interval = s.SOCKET_PING_INTERVAL / 1000
        pong_timeout = s.SOCKET_PONG_TIMEOUT / 1000
        # engine.io: the server pings every pingInterval; silence beyond interval+timeout is death
        engine_silence = (handshake.pingInterval + handshake.pingTimeout) / 1000
        try:
            while True:
                started = time.monotonic()
                self._pong.clear()
                await ws.send(protocol.primus_ping(int(time.time() * 1000)))
                try:
                    await asyncio.wait_for(self._pong.wait(), timeout=min(pong_timeout, interval))
                except TimeoutError:
                    self._log.warning(
                        "no primus pong in time; reconnecting", timeout_ms=s.SOCKET_PONG_TIMEOUT
                    )
                    await ws.close()
                    return
                await asyncio.sleep(max(interval - (time.monotonic() - started), 0.0))
                if time.monotonic() - self._last_rx > engine_silence:
                    self._log.warning(
                        "server went silent; reconnecting", seconds=round(engine_silence)
                    )
                    await ws.close()
                    return
        except websockets.ConnectionClosed:
            return
