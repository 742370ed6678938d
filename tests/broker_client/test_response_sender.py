"""The ack path of ResponseSender: the agent's answer read whole under SOCKET_MAX_RESPONSE_LENGTH,
or replaced by snyk-broker's BODY_TOO_LARGE answer; fed DownstreamResponses built here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from broker_client.broker_request import BrokerRequest
from broker_client.downstream import DownstreamResponse
from broker_client.response_sender import ResponseSender
from broker_client.settings import load_settings
from shared.http_client import HttpClient

LIMIT = 1024
ENV = {
    "BROKER_TOKEN": "0F1E2D3C-aaaa-4bbb-8ccc-123456789abc",
    "CR_AGENT_URL": "http://127.0.0.1:8081",
    "CR_TYPE": "docker-hub",
    "CR_USERNAME": "u",
    "CR_PASSWORD": "p",
    "SOCKET_MAX_RESPONSE_LENGTH": str(LIMIT),
}
REQUEST = BrokerRequest("/list", "GET", {}, None, "", "req-1")


class Answer:
    """The agent's answer in pieces of 300 bytes; records whether it was released or closed."""

    def __init__(self, body: bytes, content_length: int | None) -> None:
        self.body = body
        self.content_length = content_length
        self.ended: list[str] = []

    async def chunks(self, size: int) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), 300):
            yield self.body[start : start + 300]

    def response(self) -> DownstreamResponse:
        return DownstreamResponse(
            200,
            {"content-type": "text/plain"},
            self.content_length,
            self.chunks,
            lambda: self.ended.append("released"),
            lambda: self.ended.append("closed"),
        )


async def ack_payload(answer: Answer) -> dict[str, Any]:
    settings, _rules = load_settings(ENV)
    async with aiohttp.ClientSession() as session:
        sender = ResponseSender(settings, session, HttpClient(None), "token", "1.0.0")
        return await sender.ack_payload(REQUEST, answer.response())


async def test_an_answer_within_the_limit_travels_whole_as_text() -> None:
    answer = Answer(b"a" * LIMIT, None)
    payload = await ack_payload(answer)
    assert payload["status"] == 200 and payload["body"] == "a" * LIMIT
    assert answer.ended == ["released"]


async def test_an_undeclared_body_over_the_limit_becomes_body_too_large_at_the_limit() -> None:
    answer = Answer(b"a" * 5000, None)
    payload = await ack_payload(answer)
    assert payload["status"] == 502 and payload["errorType"] == "BODY_TOO_LARGE"
    # read up to the first piece past the limit, no further
    assert payload["originalBodySize"] == 1200
    assert payload["body"] == {
        "code": "BODY_TOO_LARGE",
        "message": f"body size of 1200 is greater than max allowed of {LIMIT} bytes",
    }
    assert answer.ended == ["closed"]


async def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    answer = Answer(b"", 7000)
    payload = await ack_payload(answer)
    assert payload["status"] == 502 and payload["originalBodySize"] == 7000
    assert answer.ended == ["closed"]
