"""The client's local HTTP listener on ``PORT``: health, systemcheck, filters, callback relay.

Callbacks from the agent that match a *public* rule go upstream as a ``request`` event with an
ack; the server's answer is returned to the caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from broker_client import error_answers
from broker_client.connection import ConnectionLost, OutboxFull, ServerConnection
from broker_client.header_hygiene import relay_headers
from broker_client.metrics import ClientMetrics
from broker_client.settings import Settings, SettingsError
from broker_client.systemcheck import run_systemcheck
from shared.accept_rules import AcceptRules
from shared.broker_message import HOP_BY_HOP, Reply, RequestMessage, merged_headers
from shared.logging import get_logger
from shared.protocol_error import ProtocolError

log = get_logger("broker_client.local_listener")


class LocalListener:
    def __init__(
        self,
        settings: Settings,
        rules: Callable[[], AcceptRules],
        connections: list[ServerConnection],
        session: aiohttp.ClientSession,
        version: str,
        *,
        reload_rules: Callable[[], AcceptRules] | None = None,
        metrics: ClientMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or ClientMetrics()
        self.reload_rules = reload_rules
        self.rules = rules
        self.connections = connections
        self.session = session
        self.version = version
        self.app = web.Application(client_max_size=settings.BROKER_CLIENT_MAX_REQUEST_BODY)
        s = settings
        self.app.router.add_get(s.BROKER_HEALTHCHECK_PATH, self.healthcheck)
        self.app.router.add_get(s.BROKER_SYSTEMCHECK_PATH, self.systemcheck)
        self.app.router.add_get("/filters", self.filters)
        self.app.router.add_post("/filters", self.reload_filters)
        self.app.router.add_get("/health/checks", self.health_checks)
        self.app.router.add_get("/health/checks/{check_id}", self.health_checks)
        self.app.router.add_get("/metrics", self.serve_metrics)
        self.app.router.add_route("*", "/{tail:.*}", self.relay)

    async def healthcheck(self, _request: web.Request) -> web.Response:
        states = [
            {
                "ok": c.is_open,
                "websocketConnectionOpen": c.is_open,
                "brokerServerUrl": c.server_url,
                "version": self.version,
                "transport": c.transport,
            }
            for c in self.connections
        ]
        status = 200 if any(c.is_open for c in self.connections) else 500
        return web.json_response(states[0] if len(states) == 1 else states, status=status)

    async def serve_metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": self.metrics.content_type}
        )

    async def systemcheck(self, _request: web.Request) -> web.Response:
        status, body = await run_systemcheck(self.settings, self.session)
        return web.json_response(body, status=status)

    async def filters(self, _request: web.Request) -> web.Response:
        return web.json_response(dict(self.rules().document))

    async def reload_filters(self, _request: web.Request) -> web.Response:
        if self.reload_rules is None:
            return _error(501, "NOT_IMPLEMENTED", "filters cannot be reloaded here")
        try:
            rules = self.reload_rules()
        except SettingsError as exc:
            # the old rules stay in force; the caller learns why the new ones were refused
            return _error(400, "INVALID_FILTERS", str(exc))
        return web.json_response(dict(rules.document))

    async def health_checks(self, request: web.Request) -> web.Response:
        """snyk-broker's preflight check of the broker server, run now."""
        wanted = request.match_info.get("check_id")
        if wanted not in (None, "broker-server-status"):
            return _error(404, "NOT_FOUND", f"no health check named {wanted!r}")
        url = f"{self.settings.BROKER_SERVER_URL}/healthcheck"
        check: dict[str, Any] = {"id": "broker-server-status", "name": "Broker Server Healthcheck"}
        try:
            async with self.session.get(
                url,
                timeout=aiohttp.ClientTimeout(total=5),
                proxy=self.settings.proxy_for(url),
                ssl=self.settings.ssl_context,
            ) as resp:
                await resp.read()
                ok = 200 <= resp.status < 300
                check.update(
                    status="passing" if ok else "error",
                    output=f"HTTP GET {url}: {resp.status} {resp.reason}",
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            check.update(status="error", output=f"HTTP GET {url}: {type(exc).__name__}")
        status = 200 if check["status"] == "passing" else 500
        return web.json_response(check if wanted else [check], status=status)

    async def relay(self, request: web.Request) -> web.Response:
        limit = self.settings.BROKER_CLIENT_MAX_REQUEST_BODY
        if request.content_length is not None and request.content_length > limit:
            return _too_large(request.content_length, limit)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _too_large(None, limit)
        url = request.path_qs
        headers = {
            k: v for k, v in merged_headers(request.headers.items()).items() if k not in HOP_BY_HOP
        }
        rule = self.rules().match_public(request.method, url, headers, body)
        if rule is None:
            log.warning(
                "local request blocked by accept rules", method=request.method, url=request.path
            )
            answer = error_answers.filter_blocked(request.path, error_answers.LOCAL_BLOCK_REASON)
            return web.json_response(answer.body, status=answer.status)
        request_id = headers.get("snyk-request-id") or str(uuid.uuid4())
        headers["snyk-request-id"] = request_id
        # the body travels as EJSON $binary, as snyk-broker sends raw buffers
        payload = RequestMessage(url, request.method, headers, body, "", request_id).to_event()
        event = "service" if headers.get("x-broker-service") == "true" else "request"
        connection = next((c for c in self.connections if c.is_open), self.connections[0])
        timeout = self.settings.BROKER_WEBSERVER_REQUEST_TIMEOUT / 1000
        try:
            args = await connection.request(event, payload, timeout=timeout)
        except OutboxFull as exc:
            return _error(503, "BROKER_UNAVAILABLE", str(exc))
        except ConnectionLost as exc:
            return _error(502, "BROKER_CONNECTION_LOST", str(exc))
        except TimeoutError:
            return _error(
                504, "BROKER_TIMEOUT", f"no answer from the broker server within {timeout:g}s"
            )
        log.info("callback relayed", method=request.method, url=request.path, request_id=request_id)
        response = _answer(args)
        self.metrics.callbacks.labels(str(response.status)).inc()
        return response


def _answer(args: list[Any]) -> web.Response:
    try:
        reply = Reply.from_ack(args, default_status=None)
    except ProtocolError as exc:
        return _error(502, "BAD_UPSTREAM_ANSWER", f"the broker server's {exc}")
    headers = relay_headers(reply.headers)
    if reply.json_body:
        headers.setdefault("content-type", "application/json")
    return web.Response(status=reply.status, body=reply.body, headers=headers)


def _too_large(size: int | None, limit: int) -> web.Response:
    message = f"request body {'of ' + str(size) + ' bytes ' if size else ''}exceeds the limit of {limit} bytes"
    return _error(413, "BODY_TOO_LARGE", message)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)
