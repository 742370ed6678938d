"""Server-to-agent requests: hygiene -> accept rule -> origin -> credentials -> substitution ->
HTTP call to the agent.

The call returns a :class:`DownstreamResponse` whose body is still unread (the sender streams
it), or an :class:`ErrorAnswer` (blocked, unreachable, timed out).
"""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import socket
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from broker_client import error_answers
from broker_client.agent_credentials import own_credentials, without_body_credentials
from broker_client.agent_secret import add_agent_secret
from broker_client.broker_request import BrokerRequest
from broker_client.error_answers import ErrorAnswer
from broker_client.header_hygiene import downstream_headers, response_headers
from broker_client.settings import Settings
from shared.accept_rules import AcceptRules, auth_header, expand_origin
from shared.http_client import HttpClient, HttpProtocolError, HttpResponse
from shared.logging import get_logger
from shared.request_hygiene import request_line_problem
from shared.var_substitution import Refused, VariableSource, substitute_body, substitute_headers

log = get_logger("broker_client.downstream")

RETRY_PAUSE = 0.5
#: Failures before any byte reached the downstream: worth another try (snyk: MAX_RETRY).
RETRYABLE = (
    ConnectionRefusedError,
    ConnectionResetError,
    ConnectionAbortedError,
    socket.gaierror,
    aiohttp.ClientConnectorError,
    aiohttp.ServerDisconnectedError,
)


@dataclass
class DownstreamResponse:
    """The agent's answer with its body still unread (from either HTTP client)."""

    status: int
    headers: dict[str, Any]
    content_length: int | None
    chunks: Callable[[int], AsyncIterator[bytes]]
    release: Callable[[], None]
    close: Callable[[], None]

    @classmethod
    def from_fast(cls, response: HttpResponse) -> DownstreamResponse:
        return cls(
            response.status,
            response_headers(response.headers),
            response.content_length,
            response.iter_chunks,
            response.release,
            response.close,
        )

    @classmethod
    def from_aiohttp(cls, response: aiohttp.ClientResponse) -> DownstreamResponse:
        return cls(
            response.status,
            response_headers(response.headers.items()),
            response.content_length,
            response.content.iter_chunked,
            response.release,
            response.close,
        )


class Downstream:
    """Makes the agent-side HTTP call for one allowed :class:`BrokerRequest`."""

    def __init__(
        self,
        settings: Settings,
        rules: Callable[[], AcceptRules],
        variables: VariableSource,
        session: aiohttp.ClientSession,
        fast: HttpClient,
        user_agent: str,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.variables = variables
        self.session = session
        self.fast = fast
        self.user_agent = user_agent
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=settings.SOCKET_CONNECT_TIMEOUT / 1000,
            sock_read=settings.BROKER_DOWNSTREAM_TIMEOUT / 1000,
        )

    async def call(self, request: BrokerRequest) -> DownstreamResponse | ErrorAnswer:
        problem = request_line_problem(request.method, request.url)
        if problem is None and "websocket" in request.headers.get("upgrade", "").lower():
            # the agent speaks plain HTTP; an upgrade would leave the caller waiting forever
            problem = "protocol upgrade (Upgrade: websocket) is not relayed"
        if problem is not None:
            log.warning(
                "request refused",
                reason=problem,
                method=request.method,
                url=request.url,
                request_id=request.request_id,
            )
            return error_answers.bad_request(request.url, problem)
        rule = self.rules().match_private(
            request.method, request.url, request.headers, request.body
        )
        if rule is None or not rule.origin:
            log.warning(
                "request blocked by accept rules",
                method=request.method,
                url=request.url,
                request_id=request.request_id,
            )
            return error_answers.filter_blocked(request.url)
        # one member of each NAME_POOL for the whole request; the next request gets the next
        variables = self.variables.for_request()
        origin = expand_origin(rule.origin, variables)
        headers = downstream_headers(request.headers, user_agent=self.user_agent)
        body = request.body
        agent_bound = origin == self.settings.CR_AGENT_URL
        if agent_bound:
            body = self._own_credentials(request, headers, body)
        allow = self.settings.substitution_allow
        refused: list[Refused] = []
        if self.settings.header_substitution:
            skip = ("authorization",) if agent_bound else ()
            refused += substitute_headers(headers, variables, allow, skip)[1]
        if self.settings.body_substitution:
            body, _, refused_in_body = substitute_body(body, variables, allow)
            refused += refused_in_body
        if refused:
            log.warning(
                "placeholders left literal: not on BROKER_CLIENT_VAR_SUB_ALLOW",
                placeholders=[f"{r.variable} in {r.place}" for r in refused],
                request_id=request.request_id,
            )
        if headers.get("x-broker-content-type") == "application/x-www-form-urlencoded" and body:
            body = _form_encode(body)
            headers["content-type"] = "application/x-www-form-urlencoded"
        authorization = auth_header(rule.auth, variables)
        if authorization is not None:
            headers["authorization"] = authorization
        target = _with_userinfo_auth(origin + request.url, headers)
        add_agent_secret(self.settings, target, headers)
        return await self._send(request, target, headers, body)

    def _own_credentials(
        self, request: BrokerRequest, headers: dict[str, str], body: bytes | None
    ) -> bytes | None:
        """This client's CR_CREDENTIALS in ``Authorization``; the server's own dropped."""
        if own_credentials(headers, self.settings.CR_CREDENTIALS):
            log.warning(
                "Authorization sent by the server dropped; the agent gets this client's "
                "CR_CREDENTIALS",
                request_id=request.request_id,
            )
        body, foreign = without_body_credentials(body)
        if foreign:
            log.warning(
                "'credentials' body field sent by the server dropped; the agent gets this "
                "client's CR_CREDENTIALS",
                request_id=request.request_id,
            )
        return body

    async def _send(
        self, request: BrokerRequest, target: str, headers: dict[str, str], body: bytes | None
    ) -> DownstreamResponse | ErrorAnswer:
        attempts = self.settings.MAX_RETRY + 1
        proxy = self.settings.proxy_for(target)
        for attempt in range(1, attempts + 1):
            try:
                if proxy is None:
                    response = await self.fast.request(
                        request.method,
                        target,
                        headers=headers,
                        body=body,
                        connect_timeout=self.settings.SOCKET_CONNECT_TIMEOUT / 1000,
                        read_timeout=self.settings.BROKER_DOWNSTREAM_TIMEOUT / 1000,
                    )
                    return DownstreamResponse.from_fast(response)
                via_proxy = await self.session.request(
                    request.method,
                    target,
                    headers=headers,
                    data=body,
                    timeout=self.timeout,
                    proxy=proxy,
                    ssl=self.settings.ssl_context,
                    allow_redirects=False,
                )
                return DownstreamResponse.from_aiohttp(via_proxy)
            except RETRYABLE as exc:
                if attempt < attempts:
                    log.info(
                        "downstream connection failed, retrying",
                        attempt=attempt,
                        error=type(exc).__name__,
                        request_id=request.request_id,
                    )
                    await asyncio.sleep(RETRY_PAUSE)
                    continue
                return self._failure(request, exc, target)
            except (
                TimeoutError,
                OSError,
                aiohttp.ClientError,
                HttpProtocolError,
                ValueError,
            ) as exc:
                return self._failure(request, exc, target)
        raise AssertionError("unreachable")  # pragma: no cover

    def _failure(self, request: BrokerRequest, exc: BaseException, target: str) -> ErrorAnswer:
        where = urllib.parse.urlsplit(target).netloc
        if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
            code = error_answers.DOWNSTREAM_TIMEOUT
            message = "downstream did not answer in time"
        elif isinstance(exc, socket.gaierror):
            code = error_answers.DOWNSTREAM_UNREACHABLE
            message = f"getaddrinfo ENOTFOUND {where}"
        elif isinstance(exc, aiohttp.ClientConnectorError):
            code = error_answers.DOWNSTREAM_UNREACHABLE
            message = f"connect {_errno_name(exc.os_error)} {exc.host}:{exc.port}"
        elif isinstance(exc, ConnectionRefusedError):
            code = error_answers.DOWNSTREAM_UNREACHABLE
            message = f"connect {_errno_name(exc)} {where}"
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


def _errno_name(exc: OSError | None) -> str:
    number = exc.errno if exc is not None else None
    return errno.errorcode.get(number, "ECONNREFUSED") if number else "ECONNREFUSED"


def _with_userinfo_auth(url: str, headers: dict[str, str]) -> str:
    """Credentials embedded in the origin become Basic auth (as snyk-broker honours them)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url
    if "authorization" not in headers:
        pair = (
            f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        )
        headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


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
