"""Error answers in snyk-broker's shapes, through the real snyk-broker server: the agent is down,
too slow, or answers an error status."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.processes import refused_port
from tests.broker_client.conftest import Apps, OurClient, start_our_client
from tests.support import snyk_broker

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def server(
    apps: Apps, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[snyk_broker.SnykBroker]:
    snyk_broker.require_snyk_broker()
    workdir = tmp_path_factory.mktemp("errors")
    broker = snyk_broker.start_server(workdir, accept=snyk_broker.server_accept(apps.upstream_url))
    yield broker
    broker.stop()


def connected(
    server: snyk_broker.SnykBroker, workdir: Path, agent_url: str, **extra: str
) -> OurClient:
    client = start_our_client(workdir, server_url=server.url, agent_url=agent_url, extra=extra)
    snyk_broker.wait_for_clients(server.url, client.token, 2, timeout=20)
    return client


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.mark.parametrize("ack", [False, True], ids=["stream", "ack"])
def test_unreachable_agent_gives_502_downstream_unreachable_after_retries(
    server: snyk_broker.SnykBroker, tmp_path: Path, ack: bool
) -> None:
    client = connected(server, tmp_path, f"http://127.0.0.1:{refused_port()}", MAX_RETRY="2")
    try:
        started = time.monotonic()
        headers = {"x-broker-ws-response": "1"} if ack else {}
        status, _h, body = get(f"{server.url}/broker/{client.token}/list", headers)
        elapsed = time.monotonic() - started
    finally:
        client.stop()
    assert status == 502
    doc = json.loads(body)
    assert doc["code"] == "DOWNSTREAM_UNREACHABLE" and "ECONNREFUSED" in doc["message"]
    assert elapsed >= 0.9  # two retries, 500 ms apart
    assert client.process.log_text().count("downstream connection failed, retrying") == 2


def test_slow_agent_gives_504_downstream_timeout(
    server: snyk_broker.SnykBroker, apps: Apps, tmp_path: Path
) -> None:
    client = connected(server, tmp_path, apps.agent_url, BROKER_DOWNSTREAM_TIMEOUT="300")
    try:
        status, _h, body = get(f"{server.url}/broker/{client.token}/list/slow/2000")
    finally:
        client.stop()
    assert status == 504
    assert json.loads(body)["code"] == "DOWNSTREAM_TIMEOUT"


def test_agent_error_status_passes_through_unchanged(
    server: snyk_broker.SnykBroker, apps: Apps, tmp_path: Path
) -> None:
    client = connected(server, tmp_path, apps.agent_url)
    try:
        for ack in (False, True):
            headers = {"x-test-status": "403", **({"x-broker-ws-response": "1"} if ack else {})}
            status, _h, body = get(f"{server.url}/broker/{client.token}/list/private/repo", headers)
            assert status == 403, ack
            assert json.loads(body)["path_qs"] == "/list/private/repo"
    finally:
        client.stop()
