"""The broker client process: two sockets to the server, the agent behind, a local listener.

Data flows one way per direction: socket event -> :class:`BrokerRequest` -> accept rule ->
substitution -> downstream call -> response stream (or ack) -> server. Callbacks: local HTTP ->
public rule -> ``request`` event -> ack -> local answer.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from broker_client import error_answers
from broker_client.broker_request import BrokerRequest
from broker_client.connection import AckHandle, ServerConnection
from broker_client.downstream import Downstream
from broker_client.local_listener import LocalListener
from broker_client.metrics import ClientMetrics
from broker_client.response_sender import ResponseSender
from broker_client.settings import CLIENT_VERSION, Settings, load_accept_rules
from shared.accept_rules import AcceptRules
from shared.broker_message import reply
from shared.emitter import Event
from shared.http_client import HttpClient, HttpProtocolError
from shared.logging import get_logger
from shared.port_file import bound_port, write_port_file
from shared.protocol_error import ProtocolError
from shared.redaction import hash_token, mask_token

log = get_logger("broker_client")

ROLES = ("primary", "secondary")


def _is_open(connection: ServerConnection) -> Callable[[], bool]:
    """Read the socket's state when the gauge is collected, not when it is registered."""
    return lambda: connection.is_open


class BrokerClient:
    def __init__(self, settings: Settings, rules: AcceptRules) -> None:
        self.settings = settings
        self.rules = rules
        self.version = CLIENT_VERSION
        self.client_id = str(uuid.uuid4())
        self.variables = settings.variables()
        self.metrics = ClientMetrics()
        self.connections: list[ServerConnection] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        s = self.settings
        agent_connections = s.BROKER_DOWNSTREAM_MAX_CONNECTIONS
        downstream_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=max(256, agent_connections),
                limit_per_host=agent_connections,
                keepalive_timeout=60,
            ),
            auto_decompress=False,  # bytes pass through untouched, with their content-encoding
            trust_env=False,  # proxies are chosen per URL from our settings
            skip_auto_headers=("User-Agent",),
        )
        upstream_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=60),
            trust_env=False,
        )
        fast = HttpClient(s.ssl_context)
        # its own pool for the agent, bounded: a burst from the server queues here rather than
        # opening thousands of sockets to the agent
        to_agent = HttpClient(s.ssl_context, max_connections_per_origin=agent_connections)
        user_agent = f"Snyk Broker Client {self.version}"
        self.downstream = Downstream(
            s, lambda: self.rules, self.variables, downstream_session, to_agent, user_agent
        )
        self.sender = ResponseSender(s, upstream_session, fast, s.BROKER_TOKEN, self.version)
        self.connections = [
            ServerConnection(
                settings=s,
                rules=lambda: self.rules,
                role=role,
                client_id=self.client_id,
                version=self.version,
                on_event=self.on_event,
            )
            for role in ROLES
        ]
        for connection in self.connections:
            self.metrics.watch_socket(connection.role, _is_open(connection))
        listener = LocalListener(
            s,
            lambda: self.rules,
            self.connections,
            downstream_session,
            self.version,
            reload_rules=self.reload_rules,
            metrics=self.metrics,
        )
        runner = web.AppRunner(listener.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(
            runner, host=s.BROKER_CLIENT_LISTEN_HOST, port=s.PORT, ssl_context=self._listener_tls()
        )
        await site.start()
        port = bound_port(runner.addresses, s.PORT)
        log.info(
            "broker client started",
            version=self.version,
            host=s.BROKER_CLIENT_LISTEN_HOST,
            port=port,
            server=s.BROKER_SERVER_URL,
            maskedToken=mask_token(s.BROKER_TOKEN),
            hashedToken=hash_token(s.BROKER_TOKEN),
            private_rules=len(self.rules.private),
            public_rules=len(self.rules.public),
        )
        write_port_file(s.PORT_FILE, {"PORT": port})
        self.ready.set()
        sockets = [asyncio.create_task(c.run(), name=f"socket-{c.role}") for c in self.connections]
        stopper = asyncio.create_task(self._stop.wait())
        try:
            pending: set[asyncio.Task[Any]] = {*sockets, stopper}
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    break
                for task in done:
                    if task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
        finally:
            stopper.cancel()
            for connection in self.connections:
                await connection.stop()
            for task in sockets:
                task.cancel()
            await asyncio.gather(*sockets, return_exceptions=True)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await runner.cleanup()
            await fast.close()
            await to_agent.close()
            await downstream_session.close()
            await upstream_session.close()
            log.info("broker client stopped")

    def reload_rules(self) -> AcceptRules:
        """Re-read ``ACCEPT`` (``POST /filters``); on error the old rules stay in force."""
        self.rules = load_accept_rules(self.settings)
        log.info(
            "accept rules reloaded",
            private_rules=len(self.rules.private),
            public_rules=len(self.rules.public),
        )
        return self.rules

    def _listener_tls(self) -> ssl.SSLContext | None:
        if not (self.settings.HTTPS_CERT and self.settings.HTTPS_KEY):
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.settings.HTTPS_CERT, self.settings.HTTPS_KEY)
        return context

    # ------------------------------------------------------------------ server -> agent

    def on_event(
        self, connection: ServerConnection, event: Event, handle: AckHandle | None
    ) -> None:
        if event.name == "request":
            self._spawn(self.handle_request(connection, event, handle))
        elif event.name == "service":
            self._spawn(self.handle_service(event, handle))
        else:
            log.debug("event ignored", name=event.name, role=connection.role)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def handle_request(
        self, connection: ServerConnection, event: Event, handle: AckHandle | None
    ) -> None:
        self.metrics.in_flight.inc()
        try:
            await self._handle_request(connection, event, handle)
        finally:
            self.metrics.in_flight.dec()

    async def _handle_request(
        self, connection: ServerConnection, event: Event, handle: AckHandle | None
    ) -> None:
        started = time.monotonic()
        try:
            request = BrokerRequest.from_event(event.args[0] if event.args else None)
        except ProtocolError as exc:
            log.warning("malformed request event", error=str(exc), role=connection.role)
            self.metrics.served(error_answers.BAD_REQUEST, 400, time.monotonic() - started)
            if handle is not None:
                body = {"code": error_answers.BAD_REQUEST, "message": str(exc)}
                await handle.send(reply(400, {}, body, body_first=True))
            return
        try:
            answer = await self.downstream.call(request)
        except Exception as exc:  # one bad request must not take the client down
            log.exception("downstream call crashed", request_id=request.request_id)
            answer = error_answers.downstream_failure(
                error_answers.DOWNSTREAM_ERROR, type(exc).__name__
            )
        status = answer.status
        if request.wants_stream and handle is None:
            if connection.server_receives_post_streams:
                await self.sender.stream(request, connection.role, answer)
            else:
                await self.sender.stream_over_socket(request, connection, answer)
        elif handle is not None:
            try:
                payload = await self.sender.ack_payload(request, answer)
            except (aiohttp.ClientError, TimeoutError, OSError, HttpProtocolError) as exc:
                failure = error_answers.downstream_failure(
                    error_answers.DOWNSTREAM_ERROR,
                    f"reading the downstream body failed: {type(exc).__name__}",
                )
                payload = await self.sender.ack_payload(request, failure)
            status = payload["status"]
            await handle.send(payload)
        else:
            log.warning(
                "request has neither a streamingID nor an ack id", request_id=request.request_id
            )
            if not isinstance(answer, error_answers.ErrorAnswer):
                answer.close()
            return
        error_type = answer.error_type if isinstance(answer, error_answers.ErrorAnswer) else None
        self.metrics.served(error_type, status, time.monotonic() - started)
        log.debug(
            "request served",
            method=request.method,
            url=request.url,
            status=status,
            medium="http" if request.wants_stream and handle is None else "websocket",
            role=connection.role,
            request_id=request.request_id,
            ms=round((time.monotonic() - started) * 1000, 1),
        )

    async def handle_service(self, event: Event, handle: AckHandle | None) -> None:
        arg = event.args[0] if event.args and isinstance(event.args[0], dict) else {}
        url = str(arg.get("url", ""))
        request_id = (
            str((arg.get("headers") or {}).get("snyk-request-id", ""))
            if isinstance(arg.get("headers"), dict)
            else ""
        )
        headers = {"requestId": request_id}
        # snyk-broker's client writes this ack status, headers, body (not its usual order)
        if url.rstrip("/").endswith("/filters/reload"):
            answer = reply(200, headers, '"Filters reloaded"')
        else:
            answer = reply(400, headers, '"Unsupported service command"')
        if handle is not None:
            await handle.send(answer)
