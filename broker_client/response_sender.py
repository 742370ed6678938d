"""Answering the server: streaming ``POST /response-data/<token>/<streamingID>`` or an ack.

The stream path never holds the whole body: the agent's response is read in bounded chunks
and written to the POST as it arrives (aiohttp applies back-pressure both ways). The ack path
must buffer (the body travels as one socket message) and is capped, as in snyk-broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from broker_client import error_answers
from broker_client.broker_request import BrokerRequest
from broker_client.downstream import DownstreamResponse
from broker_client.error_answers import ErrorAnswer
from broker_client.settings import Settings
from shared.logging import get_logger
from shared.response_stream import CONTENT_TYPE, encode_head

log = get_logger("broker_client.response_sender")

#: Bodies up to this size with a known length are sent in one piece (cheaper than chunking).
SMALL_BODY = 256 * 1024
CHUNK = 256 * 1024
CONNECT_RETRIES = 3
RETRY_PAUSE = 0.5

_CORRELATION = (
    ("Snyk-acting-org-public-id", "snyk-acting-org-public-id"),
    ("Snyk-acting-group-public-id", "snyk-acting-group-public-id"),
    ("Snyk-product-line", "snyk-product-line"),
    ("Snyk-flow-name", "snyk-flow-name"),
)


class ResponseSender:
    def __init__(
        self, settings: Settings, session: aiohttp.ClientSession, token: str, version: str
    ) -> None:
        self.settings = settings
        self.session = session
        self.token = token
        self.version = version
        self.timeout = aiohttp.ClientTimeout(
            total=settings.BROKER_CLIENT_POST_TIMEOUT / 1000,
            sock_connect=settings.SOCKET_CONNECT_TIMEOUT / 1000,
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
        if isinstance(answer, ErrorAnswer):
            head = encode_head(answer.status, answer.headers, answer.error_type)
            payload: bytes | AsyncIterator[bytes] = head + answer.body_bytes()
        else:
            head = encode_head(
                answer.status, answer.headers, error_answers.classify_status(answer.status)
            )
            length = answer.content_length
            if length is not None and length <= SMALL_BODY:
                payload = head + await answer.response.read()
                answer.release()
            else:
                payload = _chunks(head, answer)
        errors: list[str] = []
        for attempt in range(CONNECT_RETRIES + 1):
            headers = self._headers(request, attempt, errors)
            try:
                async with self.session.post(
                    url,
                    data=payload,
                    headers=headers,
                    timeout=self.timeout,
                    proxy=self.settings.proxy_for(url),
                    ssl=self.settings.ssl_context if url.startswith("https:") else None,
                ) as resp:
                    if resp.status >= 300:
                        text = (await resp.content.read(500)).decode(errors="replace")
                        log.error(
                            "server refused the streamed response",
                            status=resp.status,
                            answer=text,
                            request_id=request.request_id,
                        )
                    else:
                        await resp.read()
                return
            except aiohttp.ClientConnectorError as exc:
                # only connection set-up is retried: the body generator has not started yet
                errors.append(type(exc).__name__)
                if attempt < CONNECT_RETRIES:
                    await asyncio.sleep(RETRY_PAUSE)
                    continue
                log.error(
                    "could not reach the server to post a response",
                    error=str(exc),
                    request_id=request.request_id,
                )
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.error(
                    "posting the response to the server failed",
                    error=f"{type(exc).__name__}: {exc}",
                    request_id=request.request_id,
                )
            break
        if isinstance(answer, DownstreamResponse):
            answer.close()

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

    # ------------------------------------------------------------------ ack path

    async def ack_payload(
        self, request: BrokerRequest, answer: DownstreamResponse | ErrorAnswer
    ) -> dict[str, Any]:
        """The ack argument: ``{"status", "body" (text), "headers", "errorType"?}``."""
        limit = self.settings.SOCKET_MAX_RESPONSE_LENGTH
        if isinstance(answer, DownstreamResponse):
            body = await _read_capped(answer, limit)
            if isinstance(body, int):
                answer = error_answers.body_too_large(body, limit)
                log.error(
                    "response too large for the websocket answer",
                    size=body,
                    limit=limit,
                    request_id=request.request_id,
                )
            else:
                headers = dict(answer.headers)
                headers["snyk-request-id"] = request.request_id
                headers.setdefault("x-broker-ws-response", "true")
                payload: dict[str, Any] = {
                    "status": answer.status,
                    "body": body.decode("utf-8", errors="replace"),
                    "headers": headers,
                }
                error_type = error_answers.classify_status(answer.status)
                if error_type:
                    payload["errorType"] = error_type
                return payload
        return {
            "status": answer.status,
            "errorType": answer.error_type,
            "body": answer.body,
            "headers": {
                **answer.headers,
                "snyk-request-id": request.request_id,
                "x-broker-ws-response": "true",
            },
            **answer.extra_head,
        }


async def _chunks(head: bytes, answer: DownstreamResponse) -> AsyncIterator[bytes]:
    yield head
    try:
        async for chunk in answer.response.content.iter_chunked(CHUNK):
            yield chunk
    finally:
        answer.release()


async def _read_capped(answer: DownstreamResponse, limit: int) -> bytes | int:
    """The whole body, or its size (known or at least limit+1) when it is over ``limit``."""
    try:
        length = answer.content_length
        if length is not None and length > limit:
            answer.close()
            return length
        parts: list[bytes] = []
        size = 0
        async for chunk in answer.response.content.iter_chunked(CHUNK):
            size += len(chunk)
            if size > limit:
                answer.close()
                return size
            parts.append(chunk)
        answer.release()
        return b"".join(parts)
    except (aiohttp.ClientError, TimeoutError):
        answer.close()
        raise
