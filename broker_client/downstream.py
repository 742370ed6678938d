"""Server-to-agent requests: accept rule -> origin -> substitution -> HTTP call to the agent.

The call returns a :class:`DownstreamResponse` whose body is still unread (the sender streams
it), or an :class:`ErrorAnswer` (blocked, unreachable, timed out).
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiohttp

from broker_client import error_answers
from broker_client.broker_request import BrokerRequest
from broker_client.error_answers import ErrorAnswer
from broker_client.header_hygiene import downstream_headers, response_headers
from broker_client.settings import Settings
from shared.accept_rules import AcceptRules, auth_header, expand_origin
from shared.logging import get_logger
from shared.var_substitution import VariableSource, substitute_body, substitute_headers

log = get_logger("broker_client.downstream")

RETRY_PAUSE = 0.5


@dataclass
class DownstreamResponse:
    status: int
    headers: dict[str, Any]
    response: aiohttp.ClientResponse

    @property
    def content_length(self) -> int | None:
        return self.response.content_length

    def release(self) -> None:
        self.response.release()

    def close(self) -> None:
        self.response.close()


class Downstream:
    """Makes the agent-side HTTP call for one allowed :class:`BrokerRequest`."""

    def __init__(
        self,
        settings: Settings,
        rules: AcceptRules,
        variables: VariableSource,
        session: aiohttp.ClientSession,
        user_agent: str,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.variables = variables
        self.session = session
        self.user_agent = user_agent
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=settings.SOCKET_CONNECT_TIMEOUT / 1000,
            sock_read=settings.BROKER_DOWNSTREAM_TIMEOUT / 1000,
        )

    async def call(self, request: BrokerRequest) -> DownstreamResponse | ErrorAnswer:
        rule = self.rules.match_private(request.method, request.url, request.headers, request.body)
        if rule is None or not rule.origin:
            log.warning(
                "request blocked by accept rules",
                method=request.method,
                url=request.url,
                request_id=request.request_id,
            )
            return error_answers.filter_blocked(request.url)
        headers = downstream_headers(
            request.headers,
            user_agent=self.user_agent,
            remove_x_forwarded=self.settings.remove_x_forwarded,
        )
        body = request.body
        if self.settings.header_substitution:
            substitute_headers(headers, self.variables)
        if self.settings.body_substitution:
            body, _ = substitute_body(body, self.variables)
        if headers.get("x-broker-content-type") == "application/x-www-form-urlencoded" and body:
            body = _form_encode(body)
            headers["content-type"] = "application/x-www-form-urlencoded"
        authorization = auth_header(rule.auth, self.variables)
        if authorization is not None:
            headers["authorization"] = authorization
        target = expand_origin(rule.origin, self.variables) + request.url
        return await self._send(request, target, headers, body)

    async def _send(
        self, request: BrokerRequest, target: str, headers: dict[str, str], body: bytes | None
    ) -> DownstreamResponse | ErrorAnswer:
        attempts = self.settings.MAX_RETRY + 1
        for attempt in range(1, attempts + 1):
            try:
                response = await self.session.request(
                    request.method,
                    target,
                    headers=headers,
                    data=body,
                    timeout=self.timeout,
                    proxy=self.settings.proxy_for(target),
                    ssl=self.settings.ssl_context if target.startswith("https:") else None,
                    allow_redirects=False,
                )
            except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
                if attempt < attempts:
                    log.info(
                        "downstream connection failed, retrying",
                        attempt=attempt,
                        error=type(exc).__name__,
                        request_id=request.request_id,
                    )
                    await asyncio.sleep(RETRY_PAUSE)
                    continue
                return self._failure(request, exc)
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                return self._failure(request, exc)
            return DownstreamResponse(
                response.status, response_headers(response.headers.items()), response
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _failure(self, request: BrokerRequest, exc: BaseException) -> ErrorAnswer:
        if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
            code = error_answers.DOWNSTREAM_TIMEOUT
            message = "downstream did not answer in time"
        elif isinstance(exc, aiohttp.ClientConnectorError):
            code = error_answers.DOWNSTREAM_UNREACHABLE
            message = f"connect {_errno_name(exc)} {exc.host}:{exc.port}"
        else:
            code = error_answers.DOWNSTREAM_ERROR
            message = f"{type(exc).__name__}: {exc}"
        log.error(
            "downstream request failed",
            code=code,
            error=message,
            method=request.method,
            url=request.url,
            request_id=request.request_id,
        )
        return error_answers.downstream_failure(code, message)


def _errno_name(exc: aiohttp.ClientConnectorError) -> str:
    import errno

    number = exc.os_error.errno if exc.os_error is not None else None
    return errno.errorcode.get(number, "ECONNREFUSED") if number else "ECONNREFUSED"


def _form_encode(body: bytes) -> bytes:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body
    if not isinstance(parsed, dict):
        return body
    return urllib.parse.urlencode(
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in parsed.items()}
    ).encode()
