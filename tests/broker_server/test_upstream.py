"""UpstreamForwarder on its own: built from the server's private rules, a variable source,
metrics and two limits, no BrokerServer; the upstream is a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from broker_server.metrics import ServerMetrics
from broker_server.upstream import UpstreamForwarder
from deploy.processes import free_port
from shared.accept_rules import load_rules
from shared.redaction import mask_token
from shared.var_substitution import VariableSource

TOKEN = "7b1d3c0e-4a2f-4c55-9e8d-5f0a1b2c3d4e"


class Upstream:
    """Records what reaches it; ``/api/v1/big`` answers with a large body, ``/api/v1/slow``
    answers only when the test ends."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.release = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append((request.method, request.path_qs, dict(request.headers), body))
        if request.path == "/api/v1/big":
            return web.Response(body=b"x" * 5000)
        if request.path == "/api/v1/slow":
            await self.release.wait()
        return web.json_response({"got": body.decode()}, status=201, headers={"x-upstream": "yes"})


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, str]]:
    recorder = Upstream()
    server = TestServer(recorder.app, host="127.0.0.1", port=free_port())
    await server.start_server()
    yield recorder, f"http://127.0.0.1:{server.port}"
    recorder.release.set()
    await server.close()


def forwarder(upstream_url: str | None, metrics: ServerMetrics, **limits: Any) -> UpstreamForwarder:
    rules = None
    if upstream_url is not None:
        rules = load_rules(
            {
                "private": [
                    {
                        "method": "POST",
                        "path": "/api/v1/*",
                        "origin": "${UPSTREAM_URL}",
                        "auth": {"scheme": "bearer", "token": "${UPSTREAM_TOKEN}"},
                    }
                ]
            }
        )
    variables = VariableSource({"UPSTREAM_URL": upstream_url, "UPSTREAM_TOKEN": "up-secret"})
    return UpstreamForwarder(
        rules,
        variables,
        metrics,
        max_answer=limits.get("max_answer", 1 << 20),
        timeout=limits.get("timeout", 10.0),
    )


def counted(metrics: ServerMetrics, status: int) -> float | None:
    return metrics.registry.get_sample_value(
        "broker_server_requests_total",
        {"direction": "to_upstream", "mode": "ack", "status": str(status)},
    )


async def test_a_callback_reaches_the_rules_origin_with_the_token_and_the_rules_auth(
    upstream: tuple[Upstream, str],
) -> None:
    recorder, url = upstream
    metrics = ServerMetrics()
    forward = forwarder(url, metrics)
    try:
        answer = await forward.forward(
            TOKEN,
            {
                "url": "/api/v1/result?x=1",
                "method": "POST",
                "headers": {
                    "content-type": "application/json",
                    "connection": "keep-alive",
                    "x-broker-token": "forged",
                    "x-forwarded-for": "10.0.0.1",
                },
                "body": '{"a":1}',
            },
        )
    finally:
        await forward.close()
    assert answer["status"] == 201
    assert answer["headers"]["x-upstream"] == "yes"
    assert json.loads(answer["body"]) == {"got": '{"a":1}'}
    [(method, path, headers, body)] = recorder.seen
    assert (method, path, body) == ("POST", "/api/v1/result?x=1", b'{"a":1}')
    assert headers["X-Broker-Token"] == TOKEN
    assert headers["x-snyk-broker"] == mask_token(TOKEN)
    assert headers["Authorization"] == "Bearer up-secret"
    assert "X-Forwarded-For" not in headers
    assert counted(metrics, 201) == 1
    assert (
        metrics.registry.get_sample_value(
            "broker_server_bytes_total", {"direction": "to_upstream", "kind": "request"}
        )
        == 7
    )


async def test_a_callback_no_private_rule_allows_is_blocked_before_any_upstream_call(
    upstream: tuple[Upstream, str],
) -> None:
    recorder, url = upstream
    metrics = ServerMetrics()
    for forward in (forwarder(url, metrics), forwarder(None, metrics)):
        answer = await forward.forward(TOKEN, {"url": "/api/v2/other", "method": "POST"})
        assert answer["status"] == 401
        assert json.loads(answer["body"])["code"] == "FILTER_BLOCKED"
    assert recorder.seen == []
    assert counted(metrics, 401) == 2


async def test_a_malformed_callback_gets_a_400_naming_the_field() -> None:
    forward = forwarder(None, ServerMetrics())
    answer = await forward.forward(TOKEN, {"method": "POST"})
    assert answer["status"] == 400
    assert json.loads(answer["body"]) == {
        "code": "BAD_REQUEST",
        "message": "request event has no url",
    }


async def test_an_upstream_answer_over_max_answer_is_refused_with_502(
    upstream: tuple[Upstream, str],
) -> None:
    _, url = upstream
    forward = forwarder(url, ServerMetrics(), max_answer=4096)
    try:
        answer = await forward.forward(TOKEN, {"url": "/api/v1/big", "method": "POST"})
    finally:
        await forward.close()
    assert answer["status"] == 502
    body = json.loads(answer["body"])
    assert body["code"] == "BODY_TOO_LARGE" and "4096" in body["message"]


async def test_an_upstream_slower_than_timeout_gets_504_naming_the_url_without_its_query(
    upstream: tuple[Upstream, str],
) -> None:
    _, url = upstream
    forward = forwarder(url, ServerMetrics(), timeout=0.3)
    try:
        answer = await forward.forward(TOKEN, {"url": "/api/v1/slow?k=v", "method": "POST"})
    finally:
        await forward.close()
    assert answer["status"] == 504
    body = json.loads(answer["body"])
    assert body == {
        "code": "UPSTREAM_TIMEOUT",
        "message": f"upstream did not answer: {url}/api/v1/slow",
    }


async def test_an_unreachable_upstream_gets_502_naming_the_failure() -> None:
    forward = forwarder(f"http://127.0.0.1:{free_port()}", ServerMetrics())
    try:
        answer = await forward.forward(TOKEN, {"url": "/api/v1/result", "method": "POST"})
    finally:
        await forward.close()
    assert answer["status"] == 502
    assert json.loads(answer["body"])["code"] == "UPSTREAM_UNREACHABLE"
