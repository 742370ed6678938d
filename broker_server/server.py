"""The broker server: its state (tokens, sockets, pending streams) and its aiohttp application."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from broker_server.budget import ByteBudget
from broker_server.client_socket import ClientSocket, SocketHooks
from broker_server.engine_transport import (
    EngineLimits,
    EngineTransport,
    SocketOpening,
    new_sid,
)
from broker_server.metrics import ServerMetrics
from broker_server.pool import ConnectionPool
from broker_server.relay import Relay, RelayLimits
from broker_server.settings import Settings
from broker_server.status import StatusEndpoints
from broker_server.streams import StreamRegistry
from broker_server.tokens import TokenRegistry
from broker_server.upstream import UpstreamForwarder
from shared.accept_rules import AcceptRules
from shared.logging import get_logger
from shared.var_substitution import VariableSource

log = get_logger("broker_server")

SERVER_KEY: web.AppKey[BrokerServer] = web.AppKey("broker_server")

#: how long a closed polling session keeps its last packets for one more GET
CLOSED_SESSION_LINGER = 5.0


class BrokerServer:
    def __init__(
        self,
        settings: Settings,
        rules: AcceptRules | None,
        tokens: list[str],
        variables: VariableSource | None = None,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.tokens = TokenRegistry(tokens)
        self.pool = ConnectionPool(settings.RECONNECT_GRACE_MS / 1000)
        self.streams = StreamRegistry(settings.CACHE_EXPIRY)
        self.metrics = ServerMetrics()
        self.budget = ByteBudget(
            server=settings.BROKER_SERVER_MAX_INFLIGHT_BYTES,
            token=settings.BROKER_SERVER_MAX_INFLIGHT_BYTES_PER_TOKEN,
            connection=settings.BROKER_SERVER_MAX_INFLIGHT_BYTES_PER_CONNECTION,
        )
        self.metrics.inflight_bytes.set_function(lambda: self.budget.total)
        self.sessions: dict[str, ClientSocket] = {}
        self.engine = EngineTransport(
            limits=EngineLimits.from_settings(settings),
            metrics=self.metrics,
            tokens=self.tokens,
            budget=self.budget,
            sockets=self,
        )
        self.relay = Relay(
            limits=RelayLimits.from_settings(settings),
            metrics=self.metrics,
            tokens=self.tokens,
            clients=self.pool,
            streams=self.streams,
            budget=self.budget,
            rules=rules,
        )
        self.upstream = UpstreamForwarder(
            rules,
            # read once, as snyk-broker reads its configuration: a NAME_POOL keeps rotating
            variables if variables is not None else settings.variables(),
            self.metrics,
            max_answer=settings.SOCKET_MAX_RESPONSE_LENGTH,
            timeout=settings.BROKER_WEBSERVER_REQUEST_TIMEOUT / 1000,
        )
        self.status = StatusEndpoints(tokens=self.tokens, clients=self.pool, metrics=self.metrics)
        self.socket_hooks = SocketHooks(
            settings=settings,
            metrics=self.metrics,
            tokens=self.tokens,
            forward=self.upstream.forward,
            identified=self._identified,
            transport_changed=self.refresh_connection_metrics,
            closed=self.forget_session,
        )

    # -- the socket table (broker_server.engine_transport.SocketTable) -------------------------

    def find(self, sid: str) -> ClientSocket | None:
        return self.sessions.get(sid)

    def open_sessions(self, token: str) -> int:
        return sum(1 for s in self.sessions.values() if s.token == token and not s.closed)

    def new_session(self, opening: SocketOpening) -> ClientSocket:
        session = ClientSocket(
            self.socket_hooks,
            account=opening.account,
            token=opening.token,
            sid=new_sid(),
            eio=opening.eio,
            transport=opening.transport,
            role_hint=opening.role_hint,
            client_id_header=opening.client_id_header,
        )
        self.sessions[session.sid] = session
        self.pool.add_handshaking(session)
        self.metrics.connections_total.labels(str(opening.eio)).inc()
        self.refresh_connection_metrics()
        log.info(
            "client socket opened", **session.describe(), **self.tokens.describe(opening.token)
        )
        return session

    def _identified(self, session: ClientSocket) -> None:
        self.pool.register(session)
        self.refresh_connection_metrics()

    def forget_session(self, session: ClientSocket) -> None:
        self.pool.remove(session)
        self.streams.fail_session(session)
        if session.ws is None and session.outbox:
            # a polling client still has to fetch the close packet (and server close)
            asyncio.get_running_loop().call_later(CLOSED_SESSION_LINGER, self._drop, session)
        else:
            self._drop(session)
        self.refresh_connection_metrics()

    def _drop(self, session: ClientSocket) -> None:
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]

    def refresh_connection_metrics(self) -> None:
        counts: dict[tuple[str, str], int] = {}
        for transport in ("polling", "websocket"):
            for state in ("identified", "handshaking"):
                counts[(transport, state)] = 0
        for session in self.sessions.values():
            if session.closed:
                continue
            state = "identified" if session.identity is not None else "handshaking"
            counts[(session.transport, state)] = counts.get((session.transport, state), 0) + 1
        for (transport, state), value in counts.items():
            self.metrics.connections.labels(transport, state).set(value)

    async def close(self) -> None:
        for session in list(self.sessions.values()):
            await session.close("server shutting down")
        await self.upstream.close()

    async def on_shutdown(self, app: web.Application) -> None:
        # before aiohttp waits for open connections: end the websockets and pending polls
        for session in list(self.sessions.values()):
            await session.close("server shutting down", server_close=False)

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(min(60.0, self.settings.CACHE_EXPIRY))
            self.streams.expire()

    async def lifespan(self, app: web.Application) -> AsyncIterator[None]:
        expiry = asyncio.create_task(self._expire_loop())
        yield
        expiry.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await expiry
        await self.close()


def build_app(
    settings: Settings,
    rules: AcceptRules | None,
    tokens: list[str],
    variables: VariableSource | None = None,
) -> web.Application:
    """The server's application; ``variables`` fill the private rules' ``${NAME}`` (default:
    the process environment, read now)."""
    server = BrokerServer(settings, rules, tokens, variables)
    # /broker bodies and polling payloads are bounded by their handlers; /response-data streams
    app = web.Application(
        client_max_size=max(settings.SOCKET_MAX_RESPONSE_LENGTH, settings.BROKER_SERVER_MAX_BODY)
    )
    app[SERVER_KEY] = server
    app.cleanup_ctx.append(server.lifespan)
    app.on_shutdown.append(server.on_shutdown)
    app.router.add_route("*", "/primus/{token}/", server.engine.handle)
    app.router.add_route("*", "/primus/{token}", server.engine.handle)
    app.router.add_route("*", "/broker/{token}/{path:.*}", server.relay.handle_broker)
    app.router.add_route("*", "/broker/{token}", server.relay.handle_broker)
    app.router.add_post("/response-data/{token}/{stream_id}", server.relay.handle_response_data)
    app.router.add_get("/connection-status/{token}", server.status.connection_status)
    app.router.add_get("/connections-status", server.status.connections_status)
    app.router.add_get("/healthcheck", server.status.healthcheck)
    app.router.add_get("/", server.status.healthcheck)
    app.router.add_get("/metrics", server.status.metrics)
    return app
