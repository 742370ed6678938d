"""``ALL /broker/<token>/<path>`` and ``POST /response-data/<token>/<streamingID>``.

A caller's request becomes a ``request`` event to the newest ready client of the token. In
stream mode (default when the client advertised ``post-streams``) the answer arrives as a POST
whose frame is decoded by :class:`shared.response_stream.ResponseStreamDecoder` and written
chunk by chunk into the caller's response. In ack mode (caller sent ``x-broker-ws-response``, or
the client cannot stream) the answer is the event's acknowledgement.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from broker_server.body_reader import read_body
from broker_server.budget import Account, ByteBudget, OverBudget
from broker_server.client_socket import ClientSocket, SocketClosed
from broker_server.streams import PendingStream, StreamFailed, StreamRegistry, StreamTimedOut
from broker_server.tokens import TokenRegistry
from shared.broker_message import (
    BUFFERED_DROP,
    Reply,
    RequestMessage,
    answer_headers,
    declared_length,
    merged_headers,
)
from shared.logging import get_logger
from shared.protocol_error import ProtocolError
from shared.response_stream import BodyChunk, Head, ResponseStreamDecoder

if TYPE_CHECKING:
    from broker_server.metrics import ServerMetrics
    from broker_server.pool import TokenState
    from broker_server.settings import Settings
    from shared.accept_rules import AcceptRules

log = get_logger("broker_server.relay")

#: back-off while a token's client is mid-handshake or reconnecting (snyk-broker retries 4 times)
WAIT_STEPS = (0.1, 0.2, 0.4, 0.8)


class ClientGone(Exception):
    """The chosen client disconnected before it started answering."""


class NoClient(Exception):
    """No client of the token can take the request; ``response`` tells the caller why."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.text)
        self.response = response


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


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """The settings the relay reads, times in seconds."""

    #: largest caller's body (BROKER_SERVER_MAX_BODY)
    max_body: int
    #: a caller's whole request, its answer's last byte included (BROKER_WEBSERVER_REQUEST_TIMEOUT)
    request_timeout: float
    #: longest silence inside a streamed answer's POST (BROKER_SERVER_STREAM_IDLE_TIMEOUT)
    stream_idle_timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RelayLimits:
        return cls(
            max_body=settings.BROKER_SERVER_MAX_BODY,
            request_timeout=settings.BROKER_WEBSERVER_REQUEST_TIMEOUT / 1000,
            stream_idle_timeout=settings.BROKER_SERVER_STREAM_IDLE_TIMEOUT / 1000,
        )


class ClientLookup(Protocol):
    """Which client socket takes a token's request (:class:`broker_server.pool.ConnectionPool`)."""

    def select(self, token: str) -> ClientSocket | None: ...

    def state(self, token: str) -> TokenState: ...


class Relay:
    """The two HTTP handlers; what they need of the server is passed in, nothing more."""

    def __init__(
        self,
        *,
        limits: RelayLimits,
        metrics: ServerMetrics,
        tokens: TokenRegistry,
        clients: ClientLookup,
        streams: StreamRegistry,
        budget: ByteBudget,
        rules: AcceptRules | None,
    ) -> None:
        self.limits = limits
        self.metrics = metrics
        self.tokens = tokens
        self.clients = clients
        self.streams = streams
        self.budget = budget
        self.rules = rules

    # -- /broker/<token>/<path> -----------------------------------------------------------

    async def handle_broker(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        token = self.tokens.lookup(request.match_info["token"])
        if token is None:
            return self._count(
                failure(404, "no-connection", "no broker client is connected for this token"),
                "none",
            )
        # the caller's body is held until its answer is out: charged to the token meanwhile
        account = self.budget.account(token, connection=False)
        try:
            return await self._relay(request, token, account, started)
        finally:
            account.close()

    async def _relay(
        self, request: web.Request, token: str, account: Account, started: float
    ) -> web.StreamResponse:
        parts = request.raw_path.split("/", 3)
        url = "/" + (parts[3] if len(parts) > 3 else "")
        headers = merged_headers(request.headers.items())
        if url.startswith("/ctx/"):
            context, _, rest = url[len("/ctx/") :].partition("/")
            headers["x-snyk-broker-context-id"] = context
            url = "/" + rest
        limit = self.limits.max_body
        if request.content_length is not None and request.content_length > limit:
            return self._count(
                failure(413, "body-too-large", f"request body larger than {limit} bytes"), "none"
            )
        try:
            body = await read_body(request.content, limit, account)
        except OverBudget as exc:
            self.metrics.refusals.labels(exc.refusal.scope).inc()
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
        self.metrics.bytes.labels("to_client", "request").inc(len(body))
        rules = self.rules
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
        try:
            session = await self._client_for(token)
        except NoClient as exc:
            return self._count(exc.response, "none")
        # only unique, not secret (the streaming id is the secret one): no urandom call per request
        request_id = headers.get("snyk-request-id") or str(
            uuid.UUID(int=random.getrandbits(128), version=4)
        )
        headers["snyk-request-id"] = request_id
        message = RequestMessage(url, request.method, headers, body, "", request_id)
        # a GET/HEAD whose client vanished before answering is safe to send to the next client
        attempts = 2 if request.method in ("GET", "HEAD") else 1
        for attempt in range(attempts):
            if attempt:
                try:
                    session = await self._client_for(token)
                except NoClient as exc:
                    return self._count(exc.response, "none")
                log.info("retrying on another client after a disconnect", method=request.method)
            stream_mode = (
                "x-broker-ws-response" not in headers and "post-streams" in session.capabilities
            )
            try:
                if stream_mode:
                    return await self._streamed(request, token, session, message, started)
                return await self._acked(session, message.to_event(), started)
            except ClientGone as exc:
                gone = exc
        mode = "stream" if stream_mode else "ack"
        return self._count(failure(502, "client-disconnected", str(gone)), mode)

    def _count(self, response: web.StreamResponse, mode: str) -> web.StreamResponse:
        self.metrics.requests.labels("to_client", mode, str(response.status)).inc()
        return response

    async def _client_for(self, token: str) -> ClientSocket:
        """The newest ready client of ``token``, waiting briefly for one mid-handshake;
        :class:`NoClient` with the answer for the caller when there is none."""
        for attempt, pause in enumerate((*WAIT_STEPS, None)):
            session = self.clients.select(token)
            if session is not None:
                return session
            state = self.clients.state(token)
            if state == "none" and attempt == 0:
                raise NoClient(
                    failure(404, "no-connection", "no broker client is connected for this token")
                )
            if state == "not-ready":
                raise NoClient(
                    failure(
                        400,
                        "bad-request",
                        "the connected broker clients did not send version/capabilities",
                    )
                )
            if pause is not None:
                await asyncio.sleep(pause)
        raise NoClient(
            failure(
                503,
                "connection-not-ready",
                "the broker client is connecting or reconnecting; retry shortly",
                {"Retry-After": "1"},
            )
        )

    async def _acked(
        self, session: ClientSocket, payload: dict[str, Any], started: float
    ) -> web.StreamResponse:
        timeout = self.limits.request_timeout
        try:
            ack = await session.request_with_ack(payload, timeout)
        except TimeoutError:
            return self._count(
                failure(504, "timeout", f"no answer from the broker client within {timeout:g}s"),
                "ack",
            )
        except SocketClosed as exc:
            raise ClientGone(f"the broker client disconnected: {exc}") from None
        self.metrics.latency.labels("to_client", "ack").observe(time.perf_counter() - started)
        try:
            reply = Reply.from_ack(ack.args)
        except ProtocolError as exc:
            return self._count(failure(502, "bad-answer", f"the broker client's {exc}"), "ack")
        raw = reply.body
        headers = answer_headers(reply.headers, drop=BUFFERED_DROP)
        self.metrics.bytes.labels("to_client", "response").inc(len(raw))
        return self._count(web.Response(status=reply.status, body=raw, headers=headers), "ack")

    async def _streamed(
        self,
        request: web.Request,
        token: str,
        session: ClientSocket,
        message: RequestMessage,
        started: float,
    ) -> web.StreamResponse:
        streams = self.streams
        stream = streams.create(token, request, session)
        stream.started = started
        await session.request_streamed(replace(message, streaming_id=stream.id).to_event())
        timeout = self.limits.request_timeout
        stream.deadline = time.monotonic() + timeout

        def expire() -> None:
            # the whole request is bounded, a started answer's body included
            if stream.attached:
                stream.fail(
                    f"timeout: the answer did not complete within {timeout:g}s", timed_out=True
                )
            else:
                streams.discard(stream, f"timeout: no answer within {timeout:g}s", timed_out=True)

        timer = asyncio.get_running_loop().call_later(timeout, expire)
        try:
            try:
                await asyncio.shield(stream.done)
            finally:
                timer.cancel()
        except StreamFailed as exc:
            if stream.response is None and not stream.attached and stream.session.closed:
                raise ClientGone(str(exc)) from None
            if stream.response is None and isinstance(exc, StreamTimedOut):
                return self._count(failure(504, "timeout", str(exc)), "stream")
            if stream.response is None:
                return self._count(failure(502, "stream-failed", str(exc)), "stream")
            # the head is out; the only honest signal left is a cut connection
            log.warning("streamed answer broken after its head", error=str(exc))
            if request.transport is not None:
                request.transport.close()
            return stream.response
        finally:
            streams.discard(stream)
        assert stream.response is not None
        return self._count(stream.response, "stream")

    # -- /response-data/<token>/<streamingID> ---------------------------------------------

    async def handle_response_data(self, request: web.Request) -> web.Response:
        token = self.tokens.lookup(request.match_info["token"])
        if token is None:
            self.metrics.faults.labels("response-data").inc()
            return web.json_response({"message": "unknown broker token"}, status=401)
        stream = self.streams.get(request.match_info["stream_id"])
        if stream is None:
            return web.json_response(
                {"message": "Unable to find request matching streaming id (unknown or expired)."},
                status=404,
            )
        if not self.tokens.same(stream.token, token):
            self.metrics.faults.labels("response-data").inc()
            log.warning(
                "response-data POST for another token's stream refused",
                **self.tokens.describe(token),
            )
            return web.json_response(
                {"message": "this streaming id belongs to another broker token"}, status=403
            )
        if stream.attached:
            return web.json_response(
                {"message": "an answer for this streaming id is already being received"}, status=409
            )
        stream.attached = True
        self.streams.discard(stream)  # single use
        return await self._pump(request, stream)

    async def _pump(self, request: web.Request, stream: PendingStream) -> web.Response:
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
            self.metrics.faults.labels("response-data").inc()
            log.warning("streamed answer stalled", error=str(exc))
            stream.fail(str(exc), timed_out=True)
            return web.json_response({"message": str(exc)}, status=408)
        except ProtocolError as exc:
            self.metrics.faults.labels("response-data").inc()
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
        self.metrics.bytes.labels("to_client", "response").inc(decoder.body_bytes)
        stream.finish()
        return web.Response(body=b"{}", content_type="application/json")

    async def _next_piece(self, request: web.Request, stream: PendingStream) -> bytes:
        """The next bytes of the answer's POST (b"" at its end), within the idle and the
        whole-request bounds: a client that stalls must not hold the caller."""
        idle = self.limits.stream_idle_timeout
        left = stream.deadline - time.monotonic()
        try:
            async with asyncio.timeout(max(0.0, min(idle, left))):
                return await request.content.readany()
        except TimeoutError:
            if idle < left:
                raise AnswerStalled(
                    f"timeout: the broker client's answer stalled (no data for {idle:g}s)"
                ) from None
            total = self.limits.request_timeout
            raise AnswerStalled(f"timeout: the answer did not complete within {total:g}s") from None

    async def _deliver(self, stream: PendingStream, item: Head | BodyChunk) -> bool:
        try:
            if isinstance(item, Head):
                response = web.StreamResponse(
                    status=item.status, headers=answer_headers(item.headers)
                )
                length = declared_length(item.status, item.headers, stream.caller.method)
                if length is not None:
                    # a known length spares the chunked framing (one write less per answer)
                    response.content_length = length
                    stream.expected_length = length
                await response.prepare(stream.caller)
                stream.response = response
                self.metrics.latency.labels("to_client", "stream").observe(
                    time.perf_counter() - stream.started
                )
            else:
                assert stream.response is not None
                await stream.response.write(item.data)
        except (ConnectionError, RuntimeError) as exc:
            stream.fail(f"the caller went away: {exc}")
            return False
        return True
