"""``ALL /broker/<token>/<path>`` and ``POST /response-data/<token>/<streamingID>``.

A caller's request becomes a ``request`` event to the newest ready client of the token. In
stream mode (default when the client advertised ``post-streams``) the answer arrives as a POST
whose frame is decoded by :class:`shared.response_stream.ResponseStreamDecoder` and written
chunk by chunk into the caller's response. In ack mode (caller sent ``x-broker-ws-response``, or
the client cannot stream) the answer is the event's acknowledgement.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import StreamReader, web

from broker_server.budget import Account, OverBudget
from broker_server.session import ClientSession, SessionClosed
from broker_server.streams import PendingStream, StreamFailed
from shared.logging import get_logger
from shared.protocol_error import ProtocolError
from shared.response_stream import BodyChunk, Head, ResponseStreamDecoder

if TYPE_CHECKING:
    from broker_server.server import BrokerServer

log = get_logger("broker_server.relay")

#: headers that describe one HTTP hop, not the answer; never copied across the broker
HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "upgrade",
        "proxy-connection",
        "te",
        "trailer",
    }
)
#: back-off while a token's client is mid-handshake or reconnecting (snyk-broker retries 4 times)
WAIT_STEPS = (0.1, 0.2, 0.4, 0.8)


async def read_body(
    content: StreamReader, limit: int, account: Account | None = None
) -> bytes | None:
    """A whole HTTP body, or None as soon as it exceeds ``limit`` bytes.

    With ``account``, each piece is charged to it before it is kept (the caller gives the body's
    length back when done); :class:`OverBudget` if it does not fit, with nothing left charged.
    (``StreamReader.read(n)`` returns only what is buffered, so it cannot be used for this.)
    """
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in content.iter_any():
            size += len(chunk)
            if size > limit:
                if account is not None:
                    account.give(size - len(chunk))
                return None
            if account is not None:
                account.take(len(chunk))
            chunks.append(chunk)
    except OverBudget:
        assert account is not None
        account.give(size - len(chunk))
        raise
    return b"".join(chunks)


class ClientGone(Exception):
    """The chosen client disconnected before it started answering."""


class AnswerStalled(Exception):
    """A streamed answer's POST went silent too long, or outlived the whole request's bound."""


def failure(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"ok": False, "message": message},
        status=status,
        headers={"x-broker-failure": kind, **(headers or {})},
    )


def incoming_headers(request: web.Request) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def answer_headers(headers: Any) -> dict[str, str]:
    if not isinstance(headers, dict):
        return {}
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or name.lower() in HOP_HEADERS or value is None:
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        text = str(value)
        if "\r" in text or "\n" in text:
            continue
        out[name] = text
    return out


def declared_length(head: Head, method: str) -> int | None:
    """The answer's content-length when it may be passed on (a body is expected and it parses)."""
    if method == "HEAD" or head.status < 200 or head.status in (204, 304):
        return None
    for name, value in head.headers.items():
        if isinstance(name, str) and name.lower() == "content-length":
            text = str(value).strip()
            return int(text) if text.isdigit() and len(text) < 16 else None
    return None


class Relay:
    def __init__(self, server: BrokerServer) -> None:
        self.server = server

    # -- /broker/<token>/<path> -----------------------------------------------------------

    async def handle_broker(self, request: web.Request) -> web.StreamResponse:
        server = self.server
        started = time.perf_counter()
        token = server.tokens.lookup(request.match_info["token"])
        if token is None:
            return self._count(
                failure(404, "no-connection", "no broker client is connected for this token"),
                "none",
            )
        # the caller's body is held until its answer is out: charged to the token meanwhile
        account = server.budget.account(token, connection=False)
        try:
            return await self._relay(request, token, account, started)
        finally:
            account.close()

    async def _relay(
        self, request: web.Request, token: str, account: Account, started: float
    ) -> web.StreamResponse:
        server = self.server
        parts = request.raw_path.split("/", 3)
        url = "/" + (parts[3] if len(parts) > 3 else "")
        headers = incoming_headers(request)
        if url.startswith("/ctx/"):
            context, _, rest = url[len("/ctx/") :].partition("/")
            headers["x-snyk-broker-context-id"] = context
            url = "/" + rest
        limit = server.settings.BROKER_SERVER_MAX_BODY
        if request.content_length is not None and request.content_length > limit:
            return self._count(
                failure(413, "body-too-large", f"request body larger than {limit} bytes"), "none"
            )
        try:
            body = await read_body(request.content, limit, account)
        except OverBudget as exc:
            server.metrics.refusals.labels(exc.refusal.scope).inc()
            log.warning("caller refused", reason=exc.refusal.message)
            return self._count(
                failure(
                    exc.refusal.http_status,
                    "server-busy",
                    exc.refusal.message,
                    {"Retry-After": "1"},
                ),
                "none",
            )
        if body is None:
            return self._count(
                failure(413, "body-too-large", f"request body larger than {limit} bytes"), "none"
            )
        server.metrics.bytes.labels("to_client", "request").inc(len(body))
        rules = server.rules
        if (
            rules is not None
            and rules.public
            and rules.match_public(request.method, url, headers, body) is None
        ):
            return self._count(
                web.json_response(
                    {
                        "code": "FILTER_BLOCKED",
                        "message": "blocked",
                        "reason": "Request does not match any accept rule, blocking HTTP request",
                        "url": url,
                    },
                    status=401,
                ),
                "none",
            )
        session = await self._client_for(token)
        if isinstance(session, web.Response):
            return self._count(session, "none")
        # only unique, not secret (the streaming id is the secret one): no urandom call per request
        request_id = headers.get("snyk-request-id") or str(
            uuid.UUID(int=random.getrandbits(128), version=4)
        )
        headers["snyk-request-id"] = request_id
        payload: dict[str, Any] = {
            "url": url,
            "method": request.method,
            "headers": headers,
            "streamingID": "",
            "requestId": request_id,
        }
        if body:
            payload["body"] = body
        # a GET/HEAD whose client vanished before answering is safe to send to the next client
        attempts = 2 if request.method in ("GET", "HEAD") else 1
        for attempt in range(attempts):
            if attempt:
                retry = await self._client_for(token)
                if isinstance(retry, web.Response):
                    return self._count(retry, "none")
                session = retry
                log.info("retrying on another client after a disconnect", method=request.method)
            stream_mode = (
                "x-broker-ws-response" not in headers and "post-streams" in session.capabilities
            )
            try:
                if stream_mode:
                    payload["streamingID"] = ""
                    return await self._streamed(request, token, session, payload, started)
                return await self._acked(session, payload, started)
            except ClientGone as exc:
                gone = exc
        mode = "stream" if stream_mode else "ack"
        return self._count(failure(502, "client-disconnected", str(gone)), mode)

    def _count(self, response: web.StreamResponse, mode: str) -> web.StreamResponse:
        self.server.metrics.requests.labels("to_client", mode, str(response.status)).inc()
        return response

    async def _client_for(self, token: str) -> ClientSession | web.Response:
        pool = self.server.pool
        for attempt, pause in enumerate((*WAIT_STEPS, None)):
            session = pool.select(token)
            if session is not None:
                return session
            state = pool.state(token)
            if state == "none" and attempt == 0:
                return failure(404, "no-connection", "no broker client is connected for this token")
            if state == "not-ready":
                return failure(
                    400,
                    "bad-request",
                    "the connected broker clients did not send version/capabilities",
                )
            if pause is not None:
                await asyncio.sleep(pause)
        return failure(
            503,
            "connection-not-ready",
            "the broker client is connecting or reconnecting; retry shortly",
            {"Retry-After": "1"},
        )

    async def _acked(
        self, session: ClientSession, payload: dict[str, Any], started: float
    ) -> web.StreamResponse:
        timeout = self.server.settings.BROKER_WEBSERVER_REQUEST_TIMEOUT / 1000
        try:
            ack = await session.request_with_ack(payload, timeout)
        except TimeoutError:
            return self._count(
                failure(504, "timeout", f"no answer from the broker client within {timeout:g}s"),
                "ack",
            )
        except SessionClosed as exc:
            raise ClientGone(f"the broker client disconnected: {exc}") from None
        self.server.metrics.latency.labels("to_client", "ack").observe(
            time.perf_counter() - started
        )
        reply = ack.args[0] if ack.args and isinstance(ack.args[0], dict) else None
        if reply is None:
            return self._count(
                failure(502, "bad-answer", "the broker client's answer is not an object"), "ack"
            )
        status = reply.get("status", 200)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            return self._count(
                failure(502, "bad-answer", f"the broker client answered status {status!r}"), "ack"
            )
        body = reply.get("body")
        if body is None:
            raw = b""
        elif isinstance(body, bytes):
            raw = body
        elif isinstance(body, str):
            raw = body.encode("utf-8")
        else:
            raw = json.dumps(body).encode("utf-8")
        headers = answer_headers(reply.get("headers"))
        headers.pop("content-encoding", None)
        self.server.metrics.bytes.labels("to_client", "response").inc(len(raw))
        return self._count(web.Response(status=status, body=raw, headers=headers), "ack")

    async def _streamed(
        self,
        request: web.Request,
        token: str,
        session: ClientSession,
        payload: dict[str, Any],
        started: float,
    ) -> web.StreamResponse:
        server = self.server
        stream = server.streams.create(token, request, session)
        stream.started = started
        payload["streamingID"] = stream.id
        await session.request_streamed(payload)
        timeout = server.settings.BROKER_WEBSERVER_REQUEST_TIMEOUT / 1000
        stream.deadline = time.monotonic() + timeout

        def expire() -> None:
            # the whole request is bounded, a started answer's body included
            if stream.attached:
                stream.fail(f"timeout: the answer did not complete within {timeout:g}s")
            else:
                server.streams.discard(stream, f"timeout: no answer within {timeout:g}s")

        timer = asyncio.get_running_loop().call_later(timeout, expire)
        try:
            try:
                await asyncio.shield(stream.done)
            finally:
                timer.cancel()
        except StreamFailed as exc:
            if stream.response is None and not stream.attached and stream.session.closed:
                raise ClientGone(str(exc)) from None
            if stream.response is None and str(exc).startswith("timeout:"):
                return self._count(failure(504, "timeout", str(exc)), "stream")
            if stream.response is None:
                return self._count(failure(502, "stream-failed", str(exc)), "stream")
            # the head is out; the only honest signal left is a cut connection
            log.warning("streamed answer broken after its head", error=str(exc))
            if request.transport is not None:
                request.transport.close()
            return stream.response
        finally:
            server.streams.discard(stream)
        assert stream.response is not None
        return self._count(stream.response, "stream")

    # -- /response-data/<token>/<streamingID> ---------------------------------------------

    async def handle_response_data(self, request: web.Request) -> web.Response:
        server = self.server
        token = server.tokens.lookup(request.match_info["token"])
        if token is None:
            server.metrics.faults.labels("response-data").inc()
            return web.json_response({"message": "unknown broker token"}, status=401)
        stream = server.streams.get(request.match_info["stream_id"])
        if stream is None:
            return web.json_response(
                {"message": "Unable to find request matching streaming id (unknown or expired)."},
                status=404,
            )
        if not server.tokens.same(stream.token, token):
            server.metrics.faults.labels("response-data").inc()
            log.warning(
                "response-data POST for another token's stream refused",
                **server.tokens.describe(token),
            )
            return web.json_response(
                {"message": "this streaming id belongs to another broker token"}, status=403
            )
        if stream.attached:
            return web.json_response(
                {"message": "an answer for this streaming id is already being received"}, status=409
            )
        stream.attached = True
        server.streams.discard(stream)  # single use
        return await self._pump(request, stream)

    async def _pump(self, request: web.Request, stream: PendingStream) -> web.Response:
        server = self.server
        decoder = ResponseStreamDecoder()
        try:
            while chunk := await self._next_piece(request, stream):
                for item in decoder.feed(chunk):
                    if not await self._deliver(stream, item):
                        return web.json_response(
                            {"message": "the caller of this request went away"}, status=410
                        )
            decoder.close()
        except AnswerStalled as exc:
            server.metrics.faults.labels("response-data").inc()
            log.warning("streamed answer stalled", error=str(exc))
            stream.fail(str(exc))
            return web.json_response({"message": str(exc)}, status=408)
        except ProtocolError as exc:
            server.metrics.faults.labels("response-data").inc()
            log.warning("broken response stream from client", error=str(exc))
            stream.fail(f"broken response stream from the broker client: {exc}")
            return web.json_response({"message": f"broken response stream: {exc}"}, status=400)
        except (
            Exception
        ) as exc:  # connection and aiohttp payload errors: the client's POST broke off
            stream.fail(f"the broker client's response stream broke off: {exc}")
            raise
        try:
            assert stream.response is not None
            expected = stream.expected_length
            if expected is not None and decoder.body_bytes != expected:
                # the caller cannot tell a short body from a complete one: cut the connection
                log.warning(
                    "streamed answer differs from its content-length",
                    expected=expected,
                    received=decoder.body_bytes,
                )
                stream.response.force_close()
            await stream.response.write_eof()
        except ConnectionError:
            stream.fail("the caller went away")
            return web.json_response(
                {"message": "the caller of this request went away"}, status=410
            )
        server.metrics.bytes.labels("to_client", "response").inc(decoder.body_bytes)
        stream.finish()
        return web.Response(body=b"{}", content_type="application/json")

    async def _next_piece(self, request: web.Request, stream: PendingStream) -> bytes:
        """The next bytes of the answer's POST (b"" at its end), within the idle and the
        whole-request bounds: a client that stalls must not hold the caller."""
        idle = self.server.settings.BROKER_SERVER_STREAM_IDLE_TIMEOUT / 1000
        left = stream.deadline - time.monotonic()
        try:
            async with asyncio.timeout(max(0.0, min(idle, left))):
                return await request.content.readany()
        except TimeoutError:
            if idle < left:
                raise AnswerStalled(
                    f"timeout: the broker client's answer stalled (no data for {idle:g}s)"
                ) from None
            total = self.server.settings.BROKER_WEBSERVER_REQUEST_TIMEOUT / 1000
            raise AnswerStalled(f"timeout: the answer did not complete within {total:g}s") from None

    async def _deliver(self, stream: PendingStream, item: Head | BodyChunk) -> bool:
        try:
            if isinstance(item, Head):
                response = web.StreamResponse(
                    status=item.status, headers=answer_headers(item.headers)
                )
                length = declared_length(item, stream.caller.method)
                if length is not None:
                    # a known length spares the chunked framing (one write less per answer)
                    response.content_length = length
                    stream.expected_length = length
                await response.prepare(stream.caller)
                stream.response = response
                self.server.metrics.latency.labels("to_client", "stream").observe(
                    time.perf_counter() - stream.started
                )
            else:
                assert stream.response is not None
                await stream.response.write(item.data)
        except (ConnectionError, RuntimeError) as exc:
            stream.fail(f"the caller went away: {exc}")
            return False
        return True
