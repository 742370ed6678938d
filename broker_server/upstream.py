"""Client-to-server requests (the agent's callbacks) forwarded to the upstream.

The client sends them as ``request`` events with an ack id. The server's own *private* accept
rules decide whether a request may go on and to which origin; the answer goes back in the ack
as ``{"status", "headers", "body"}`` with the body as a string, as snyk-broker's server does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import aiohttp

from broker_server.body_reader import read_body
from shared.accept_rules import auth_header, expand_origin
from shared.broker_message import (
    BUFFERED_DROP,
    FRAMING,
    RequestMessage,
    answer_headers,
    error_reply,
    reply,
)
from shared.logging import get_logger
from shared.protocol_error import ProtocolError
from shared.redaction import mask_token

if TYPE_CHECKING:
    from broker_server.client_socket import ClientSocket
    from broker_server.server import BrokerServer

log = get_logger("broker_server.upstream")

#: incoming headers never passed upstream: hop-by-hop, and broker headers only the server sets
DROPPED = FRAMING | {"host", "x-broker-token", "x-snyk-broker", "content-encoding"}


class UpstreamForwarder:
    def __init__(self, server: BrokerServer) -> None:
        self.server = server
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=True)
        return self._session

    async def forward(self, session: ClientSocket, request: Any) -> dict[str, Any]:
        started = time.perf_counter()
        answer = await self._forward(session, request)
        metrics = self.server.metrics
        metrics.requests.labels("to_upstream", "ack", str(answer["status"])).inc()
        metrics.latency.labels("to_upstream", "ack").observe(time.perf_counter() - started)
        return answer

    async def _forward(self, session: ClientSocket, request: Any) -> dict[str, Any]:
        server = self.server
        try:
            message = RequestMessage.from_event(request)
        except ProtocolError as exc:
            return error_reply(400, "BAD_REQUEST", str(exc))
        url, method, headers = message.url, message.method, message.headers
        body = message.body or None
        rules = server.rules
        rule = rules.match_private(method, url, headers, body) if rules is not None else None
        if rule is None or not rule.origin:
            log.info(
                "client request blocked by the server's accept rules",
                method=method,
                url=url.split("?")[0],
            )
            return error_reply(
                401,
                "FILTER_BLOCKED",
                "blocked",
                reason="Request does not match any accept rule on the broker server",
                url=url,
            )
        variables = server.settings.variables()
        target = expand_origin(rule.origin, variables) + url
        out = {
            k: v
            for k, v in headers.items()
            if k not in DROPPED and not k.startswith("x-forwarded-")
        }
        out["X-Broker-Token"] = session.token
        out["x-snyk-broker"] = mask_token(session.token)
        authorization = auth_header(rule.auth, variables)
        if authorization:
            out["authorization"] = authorization
        server.metrics.bytes.labels("to_upstream", "request").inc(len(body or b""))
        limit = server.settings.SOCKET_MAX_RESPONSE_LENGTH
        timeout = aiohttp.ClientTimeout(
            total=server.settings.BROKER_WEBSERVER_REQUEST_TIMEOUT / 1000
        )
        try:
            async with self._http().request(
                method, target, headers=out, data=body, timeout=timeout
            ) as resp:
                data = await read_body(resp.content, limit)
                if data is None:
                    return error_reply(
                        502, "BODY_TOO_LARGE", f"upstream answer larger than {limit} bytes"
                    )
                server.metrics.bytes.labels("to_upstream", "response").inc(len(data))
                resp_headers = answer_headers(dict(resp.headers), drop=BUFFERED_DROP)
                return reply(resp.status, resp_headers, data.decode("utf-8", "replace"))
        except TimeoutError:
            return error_reply(
                504, "UPSTREAM_TIMEOUT", f"upstream did not answer: {target.split('?')[0]}"
            )
        except aiohttp.ClientError as exc:
            log.warning("upstream unreachable", error=str(exc))
            return error_reply(502, "UPSTREAM_UNREACHABLE", f"cannot reach upstream: {exc}")
