"""Issue 5, "What must be shown" items 1 and 2: the real snyk-broker 5.22.14 client (npm) and our
broker client, each against our server (a real subprocess) in front of a test agent: a small
GET, a 60 MB streamed answer, an ack-mode request, blocked paths, and a callback upstream."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psutil
import pytest

from tests.broker_client.agent import big_sha256
from tests.broker_server.conftest import (
    TOKEN,
    Backends,
    OurServer,
    start_our_server,
    upstream_accept,
)
from tests.broker_server.http_calls import call, call_json, sha256_of
from tests.support import snyk_broker
from tests.support.eventually import eventually

pytestmark = pytest.mark.interop

BIG = 60_000_000


@dataclass
class Stack:
    kind: str
    server: OurServer
    client_url: str
    stop_client: Any
    client_log: Any

    def broker(self, path: str) -> str:
        return f"{self.server.url}/broker/{TOKEN}{path}"


@pytest.fixture(scope="module", params=["snyk-client", "our-client"])
def stack(
    request: pytest.FixtureRequest, backends: Backends, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    kind = request.param
    if kind == "snyk-client":
        snyk_broker.require_snyk_broker()
    workdir = tmp_path_factory.mktemp(kind)
    server = start_our_server(workdir, accept=upstream_accept(backends.upstream_url))
    try:
        if kind == "snyk-client":
            client = snyk_broker.start_client(
                workdir,
                token=TOKEN,
                server_url=server.url,
                env={"CR_AGENT_URL": backends.agent_url},
            )
            stack = Stack(kind, server, client.url, client.stop, client.log_text)
        else:
            from tests.broker_client.conftest import start_our_client

            ours = start_our_client(
                workdir, server_url=server.url, agent_url=backends.agent_url, token=TOKEN
            )
            stack = Stack(kind, server, ours.url, ours.stop, ours.process.log_text)
        try:
            snyk_broker.wait_for_clients(server.url, TOKEN, 2, timeout=30)
            yield stack
        finally:
            stack.stop_client()
    finally:
        server.stop()


def agent_paths(backends: Backends) -> list[str]:
    return [entry["path_qs"] for entry in backends.agent.seen]


def test_client_is_listed_with_version_and_filters(stack: Stack):
    # the real client identifies while still polling; the upgrade follows a moment later
    def upgraded() -> dict:
        status, body = call_json(f"{stack.server.url}/connection-status/{TOKEN}")
        assert status == 200
        assert all(c["transport"] == "websocket" for c in body.get("clients", [])), body
        return body

    body = eventually(upgraded, timeout=10)
    assert len(body["clients"]) == 2
    assert {c["role"] for c in body["clients"]} == {"primary", "secondary"}
    for client in body["clients"]:
        assert client["version"].startswith("5.22.14")
        assert client["transport"] == "websocket"
        assert any(rule["path"] == "/list" for rule in client["filters"]["private"])


def test_transport_path(stack: Stack):
    """The real client opens with polling and upgrades; ours opens the websocket directly."""
    events = []
    for line in stack.server.log_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    opened = [e for e in events if e.get("event") == "client socket opened"]
    upgraded = {e["sid"] for e in events if e.get("event") == "client upgraded to websocket"}
    assert len(opened) >= 2
    assert all(e["eio"] == 4 for e in opened)
    if stack.kind == "snyk-client":
        assert all(e["transport"] == "polling" for e in opened)
        assert {e["sid"] for e in opened} <= upgraded
    else:
        assert all(e["transport"] == "websocket" for e in opened)
        assert not upgraded


def test_small_get_reaches_agent(stack: Stack, backends: Backends):
    status, _, body = call(stack.broker("/list?page=1"))
    assert status == 200
    assert b'"path_qs": "/list?page=1"' in body
    assert "/list?page=1" in agent_paths(backends)


def test_60mb_streamed_answer_intact_and_never_buffered_by_server(stack: Stack):
    server = psutil.Process(stack.server.process.pid)
    baseline = server.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, server.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    try:
        status, size, digest = sha256_of(stack.broker(f"/list/big/{BIG}"))
    finally:
        done.set()
        sampler.join()
    assert (status, size) == (200, BIG)
    assert digest == big_sha256(BIG)
    assert time.monotonic() - started < 30
    # the server streams chunk by chunk: its memory must not grow by anything near 60 MB
    assert peak - baseline < 30_000_000, f"server RSS grew by {(peak - baseline) / 1e6:.1f} MB"


def test_ack_mode_request(stack: Stack):
    status, headers, body = call(
        stack.broker("/healthcheck"), headers={"x-broker-ws-response": "1"}
    )
    assert status == 200
    assert headers.get("x-broker-ws-response") == "true"
    assert b'"path_qs": "/healthcheck"' in body


@pytest.mark.parametrize(
    "path",
    ["/v2/_catalog", "/list/%2e%2e/v2/_catalog", "/list/..%2fv2", "/list/%2E%2E/x", "/secret"],
)
def test_blocked_paths_never_reach_agent(stack: Stack, backends: Backends, path: str):
    before = len(backends.agent.seen)
    status, _, body = call(stack.broker(path))
    assert status == 401, body
    assert b"FILTER_BLOCKED" in body or b"blocked" in body
    assert len(backends.agent.seen) == before


def test_callback_reaches_upstream_with_broker_token(stack: Stack, backends: Backends):
    before = len(backends.upstream.seen)
    status, _, body = call(
        f"{stack.client_url}/api/v2/import/result",
        method="POST",
        data=b'{"result":"ok"}',
        headers={"content-type": "application/json"},
    )
    assert status == 201, body
    entry = backends.upstream.seen[before]
    assert entry["path_qs"] == "/api/v2/import/result"
    assert entry["body"] == '{"result":"ok"}'
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    assert headers["x-broker-token"] == TOKEN


def test_token_never_in_server_log(stack: Stack):
    log = stack.server.log_text()
    assert "client identified" in log
    assert TOKEN not in log
    assert TOKEN.upper() not in log


def test_server_metrics_count_the_traffic(stack: Stack):
    status, _, body = call(f"{stack.server.url}/metrics")
    text = body.decode()
    assert status == 200
    assert 'broker_server_requests_total{direction="to_client",mode="stream",status="200"}' in text
    assert 'broker_server_requests_total{direction="to_upstream",mode="ack",status="201"}' in text
