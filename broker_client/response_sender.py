"""Answering the server: streaming ``POST /response-data/<token>/<streamingID>`` or an ack.

The stream path never holds the whole body: the agent's response is read in bounded chunks
and written to the POST as it arrives (back-pressure both ways). The ack path must buffer (the
body travels as one socket message) and is capped, as in snyk-broker.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from broker_client import error_answers
from broker_client.broker_request import BrokerRequest
from broker_client.connection import ConnectionLost, ServerConnection
from broker_client.downstream import DownstreamResponse
from broker_client.error_answers import ErrorAnswer
from broker_client.settings import Settings
from shared.broker_message import reply
from shared.http_client import HttpClient, HttpProtocolError
from shared.logging import get_logger
from shared.response_stream import CONTENT_TYPE, encode_head

log = get_logger("broker_client.response_sender")

#: Bodies up to this size with a known length are sent in one piece (cheaper than chunking).
SMALL_BODY = 256 * 1024
CHUNK = 256 * 1024
#: Body bytes per legacy ``chunk`` event (each is one websocket message).
LEGACY_CHUNK = 64 * 1024
CONNECT_RETRIES = 3
RETRY_PAUSE = 0.5
#: Connection set-up failures: nothing was sent yet, so the POST may be tried again.
SETUP_ERRORS = (
    ConnectionRefusedError,
    ConnectionResetError,
    socket.gaierror,
    aiohttp.ClientConnectorError,
)

_CORRELATION = (
    ("Snyk-acting-org-public-id", "snyk-acting-org-public-id"),
    ("Snyk-acting-group-public-id", "snyk-acting-group-public-id"),
    ("Snyk-product-line", "snyk-product-line"),
    ("Snyk-flow-name", "snyk-flow-name"),
)


class _Body:
    """The POST body; remembers whether streaming started (then a retry is impossible)."""

    def __init__(self, head: bytes, answer: DownstreamResponse) -> None:
        self.head = head
        self.answer = answer
        self.started = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        yield self.head
        try:
            async for chunk in self.answer.chunks(CHUNK):
                yield chunk
        finally:
            self.answer.release()


class ResponseSender:
    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession,
        fast: HttpClient,
        token: str,
        version: str,
    ) -> None:
        self.settings = settings
        self.session = session
        self.fast = fast
        self.token = token
        self.version = version
        self.total_timeout = settings.BROKER_CLIENT_POST_TIMEOUT / 1000
        self.timeout = aiohttp.ClientTimeout(
            total=self.total_timeout, sock_connect=settings.SOCKET_CONNECT_TIMEOUT / 1000
        )

    # ------------------------------------------------------------------ stream path

    async def stream(
        self, request: BrokerRequest, role: str, answer: DownstreamResponse | ErrorAnswer
    ) -> None:
        """POST the answer to the server (failures are logged; the server then times out)."""
        url = (
            f"{self.settings.BROKER_SERVER_URL}/response-data/{self.token}/"
            f"{request.streaming_id}?connection_role={role}"
        )
        body: bytes | _Body
        if isinstance(answer, ErrorAnswer):
            body = (
                encode_head(answer.status, answer.headers, answer.error_type) + answer.body_bytes()
            )
        else:
            head = encode_head(
                answer.status, answer.headers, error_answers.classify_status(answer.status)
            )
            length = answer.content_length
            if length is not None and length <= SMALL_BODY:
                try:
                    body = head + b"".join([c async for c in answer.chunks(CHUNK)])
                finally:
                    answer.release()
            else:
                body = _Body(head, answer)
        errors: list[str] = []
        try:
            for attempt in range(CONNECT_RETRIES + 1):
                headers = self._headers(request, attempt, errors)
                try:
                    async with asyncio.timeout(self.total_timeout):
                        status, text = await self._post(url, headers, body)
                except SETUP_ERRORS as exc:
                    if isinstance(body, _Body) and body.started:
                        raise
                    errors.append(type(exc).__name__)
                    if attempt < CONNECT_RETRIES:
                        await asyncio.sleep(RETRY_PAUSE)
                        continue
                    raise
                if status >= 300:
                    log.error(
                        "server refused the streamed response",
                        status=status,
                        answer=text,
                        request_id=request.request_id,
                    )
                return
        except (TimeoutError, OSError, aiohttp.ClientError, HttpProtocolError) as exc:
            log.error(
                "posting the response to the server failed",
                error=f"{type(exc).__name__}: {exc}",
                request_id=request.request_id,
            )
        finally:
            if isinstance(answer, DownstreamResponse):
                answer.close()  # no-op once released

    async def _post(
        self, url: str, headers: dict[str, str], body: bytes | _Body
    ) -> tuple[int, str]:
        proxy = self.settings.proxy_for(url)
        if proxy is None:
            response = await self.fast.request(
                "POST",
                url,
                headers=headers,
                body=body if isinstance(body, bytes) else body.__aiter__(),
                connect_timeout=self.settings.SOCKET_CONNECT_TIMEOUT / 1000,
            )
            text = (await response.read(limit=1 << 20)).decode("utf-8", "replace")
            return response.status, text[:500]
        async with self.session.post(
            url,
            data=body if isinstance(body, bytes) else body.__aiter__(),
            headers=headers,
            timeout=self.timeout,
            proxy=proxy,
            ssl=self.settings.ssl_context,
        ) as resp:
            text = (await resp.read()).decode("utf-8", "replace")
            return resp.status, text[:500]

    def _headers(self, request: BrokerRequest, attempt: int, errors: list[str]) -> dict[str, str]:
        headers = {
            "Content-Type": CONTENT_TYPE,
            "Snyk-Request-Id": request.request_id,
            "user-agent": f"Snyk Broker client {self.version}",
            "x-broker-client-version": self.version,
            "snyk-broker-retry-count": str(attempt),
        }
        for name, source in _CORRELATION:
            # snyk-broker sends the literal "undefined" when the header was absent
            headers[name] = request.headers.get(source, "undefined")
        if errors:
            headers["snyk-broker-retry-errors"] = ",".join(errors)
        return headers

    # ------------------------------------------------------------------ legacy socket path

    async def stream_over_socket(
        self,
        request: BrokerRequest,
        connection: ServerConnection,
        answer: DownstreamResponse | ErrorAnswer,
    ) -> None:
        """``chunk`` events, for a server that does not advertise ``receive-post-streams``."""
        sid = request.streaming_id
        log.info(
            "server did not advertise receive-post-streams; answering with chunk events",
            request_id=request.request_id,
        )
        try:
            if isinstance(answer, ErrorAnswer):
                head = {"status": answer.status, "headers": answer.headers}
                await connection.send_event("chunk", sid, "", False, head)
                await connection.send_event("chunk", sid, answer.body_bytes().decode(), True)
                return
            await connection.send_event(
                "chunk", sid, "", False, {"status": answer.status, "headers": answer.headers}
            )
            try:
                async for chunk in answer.chunks(LEGACY_CHUNK):
                    await connection.send_event("chunk", sid, chunk, False)
            except (TimeoutError, OSError, aiohttp.ClientError, HttpProtocolError) as exc:
                await connection.send_event("chunk", sid, str(exc), True, {"status": 500})
                return
            await connection.send_event("chunk", sid, "", True)
        except ConnectionLost as exc:
            log.error(
                "socket lost while streaming chunks", error=str(exc), request_id=request.request_id
            )
        finally:
            if isinstance(answer, DownstreamResponse):
                answer.close()

    # ------------------------------------------------------------------ ack path

    async def ack_payload(
        self, request: BrokerRequest, answer: DownstreamResponse | ErrorAnswer
    ) -> dict[str, Any]:
        """The ack argument: ``{"status", "body" (text), "headers", "errorType"?}``."""
        limit = self.settings.SOCKET_MAX_RESPONSE_LENGTH
        if isinstance(answer, DownstreamResponse):
            try:
                body = await _read_capped(answer, limit)
            except _OverLimit as exc:
                answer = error_answers.body_too_large(exc.size, limit)
                log.error(
                    "response too large for the websocket answer",
                    size=exc.size,
                    limit=limit,
                    request_id=request.request_id,
                )
            else:
                headers = dict(answer.headers)
                headers["snyk-request-id"] = request.request_id
                headers.setdefault("x-broker-ws-response", "true")
                error_type = error_answers.classify_status(answer.status)
                return reply(
                    answer.status,
                    headers,
                    body.decode("utf-8", errors="replace"),
                    body_first=True,
                    **({"errorType": error_type} if error_type else {}),
                )
        headers = {
            **answer.headers,
            "snyk-request-id": request.request_id,
            "x-broker-ws-response": "true",
        }
        return reply(
            answer.status,
            headers,
            answer.body,
            body_first=True,
            errorType=answer.error_type,
            **answer.extra_head,
        )


class _OverLimit(Exception):
    """A body over the limit; ``size`` is its length (known, or at least limit+1)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"body of {size} bytes or more")
        self.size = size


async def _read_capped(answer: DownstreamResponse, limit: int) -> bytes:
    """The whole body; :class:`_OverLimit` (the answer closed) when it is over ``limit``."""
    length = answer.content_length
    if length is not None and length > limit:
        answer.close()
        raise _OverLimit(length)
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in answer.chunks(CHUNK):
            size += len(chunk)
            if size > limit:
                break
            parts.append(chunk)
    except BaseException:
        answer.close()
        raise
    if size > limit:
        answer.close()
        raise _OverLimit(size)
    answer.release()
    return b"".join(parts)
