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
    from broker_server.metrics import ServerMetrics
    from shared.accept_rules import AcceptRules
    from shared.var_substitution import VariableSource

log = get_logger("broker_server.upstream")

#: incoming headers never passed upstream: hop-by-hop, and broker headers only the server sets
DROPPED = FRAMING | {"host", "x-broker-token", "x-snyk-broker", "content-encoding"}


class UpstreamForwarder:
    """Checks a client's callback against the private rules and makes it to the upstream.

    ``variables`` fills the rule's origin and auth; built once at start-up, so a
    ``NAME_POOL`` rotates from one callback to the next (snyk-broker reads its configuration
    once too);
    ``max_answer`` bounds an upstream answer (SOCKET_MAX_RESPONSE_LENGTH), ``timeout`` one
    upstream call, in seconds (BROKER_WEBSERVER_REQUEST_TIMEOUT).
    """

    def __init__(
        self,
        rules: AcceptRules | None,
        variables: VariableSource,
        metrics: ServerMetrics,
        *,
        max_answer: int,
        timeout: float,
    ) -> None:
        self.rules = rules
        self.variables = variables
        self.metrics = metrics
        self.max_answer = max_answer
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=True)
        return self._session

    async def forward(self, token: str, request: Any) -> dict[str, Any]:
        """The ack reply for a callback ``request`` event argument of a socket of ``token``."""
        started = time.perf_counter()
        answer = await self._forward(token, request)
        metrics = self.metrics
        metrics.requests.labels("to_upstream", "ack", str(answer["status"])).inc()
        metrics.latency.labels("to_upstream", "ack").observe(time.perf_counter() - started)
        return answer

    async def _forward(self, token: str, request: Any) -> dict[str, Any]:
        try:
            message = RequestMessage.from_event(request)
        except ProtocolError as exc:
            return error_reply(400, "BAD_REQUEST", str(exc))
        url, method, headers = message.url, message.method, message.headers
        body = message.body or None
        rules = self.rules
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
        variables = self.variables.for_request()
        target = expand_origin(rule.origin, variables) + url
        out = {
            k: v
            for k, v in headers.items()
            if k not in DROPPED and not k.startswith("x-forwarded-")
        }
        out["X-Broker-Token"] = token
        out["x-snyk-broker"] = mask_token(token)
        authorization = auth_header(rule.auth, variables)
        if authorization:
            out["authorization"] = authorization
        self.metrics.bytes.labels("to_upstream", "request").inc(len(body or b""))
        limit = self.max_answer
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with self._http().request(
                method, target, headers=out, data=body, timeout=timeout
            ) as resp:
                data = await read_body(resp.content, limit)
                if data is None:
                    return error_reply(
                        502, "BODY_TOO_LARGE", f"upstream answer larger than {limit} bytes"
                    )
                self.metrics.bytes.labels("to_upstream", "response").inc(len(data))
                resp_headers = answer_headers(dict(resp.headers), drop=BUFFERED_DROP)
                return reply(resp.status, resp_headers, data.decode("utf-8", "replace"))
        except TimeoutError:
            return error_reply(
                504, "UPSTREAM_TIMEOUT", f"upstream did not answer: {target.split('?')[0]}"
            )
        except aiohttp.ClientError as exc:
            log.warning("upstream unreachable", error=str(exc))
            return error_reply(502, "UPSTREAM_UNREACHABLE", f"cannot reach upstream: {exc}")
