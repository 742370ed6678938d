"""Our broker client against the real snyk-broker 5.22.14 server (npm), in front of a test agent.

These are the "What must be shown" items of issue 3; each test names the item it pins.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from broker_client.settings import CLIENT_VERSION
from shared.credentials import decode_credentials
from tests.broker_client.agent import big_sha256
from tests.broker_client.conftest import (
    SECRET_BASE,
    SECRET_PASSWORD,
    SECRET_USERNAME,
    Apps,
    OurClient,
    start_our_client,
)
from tests.broker_client.log_scan import find_secrets, wait_for_log
from tests.support import snyk_broker

pytestmark = pytest.mark.interop

BIG = 60_000_000


@dataclass
class Stack:
    server: snyk_broker.SnykBroker
    client: OurClient
    apps: Apps
    workdir: Path

    @property
    def token(self) -> str:
        return self.client.token

    def broker_url(self, path: str) -> str:
        return f"{self.server.url}/broker/{self.token}{path}"


@pytest.fixture(scope="module")
def stack(apps: Apps, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    snyk_broker.require_snyk_broker()
    workdir = tmp_path_factory.mktemp("interop")
    server = snyk_broker.start_server(
        workdir / "server", accept=snyk_broker.server_accept(apps.upstream_url)
    )
    client = start_our_client(workdir, server_url=server.url, agent_url=apps.agent_url)
    try:
        snyk_broker.wait_for_clients(server.url, client.token, 2, timeout=20)
        yield Stack(server, client, apps, workdir)
    finally:
        client.stop()
        server.stop()


def get(
    url: str, headers: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def raw_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A GET whose path is sent byte for byte (urllib would normalise dot segments)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def agent_paths(stack: Stack) -> list[str]:
    return [entry["path_qs"] for entry in stack.apps.agent.seen]


def test_1_get_list_reaches_agent_and_returns_its_answer(stack: Stack) -> None:
    status, _headers, body = get(stack.broker_url("/list?page=1"))
    assert status == 200
    echoed = json.loads(body)
    assert echoed["method"] == "GET"
    assert echoed["path_qs"] == "/list?page=1"
    # header hygiene: snyk's user-agent rewrite and request id copy reached the agent
    assert echoed["headers"]["user-agent"].startswith("Snyk Broker Client ")
    assert echoed["headers"]["x-request-id"] == echoed["headers"]["snyk-request-id"]


def test_2_var_sub_authorization_delivers_credentials_blob(stack: Stack) -> None:
    status, _headers, body = get(
        stack.broker_url("/list/library/ubuntu"),
        {"x-broker-var-sub": "authorization", "authorization": "${CR_CREDENTIALS}"},
    )
    assert status == 200
    blob = json.loads(body)["headers"]["authorization"]
    assert blob != "${CR_CREDENTIALS}"
    creds = decode_credentials(blob)
    assert (creds.type, creds.username, creds.password, creds.registryBase) == (
        "docker-hub",
        SECRET_USERNAME,
        SECRET_PASSWORD,
        SECRET_BASE,
    )
    assert base64.b64decode(blob).endswith(b"}\n")  # snyk's shape: JSON plus a newline


def test_2b_body_var_sub_fills_allowed_json_fields_only(stack: Stack) -> None:
    body = json.dumps(
        {
            "image": "a:b",
            "BROKER_VAR_SUB": ["callbackUrl", "cb"],
            "callbackUrl": "${BROKER_CLIENT_URL}/api",
            "cb": "${BROKER_CLIENT_URL}/api",
        }
    ).encode()
    request = urllib.request.Request(
        stack.broker_url("/scan"),
        data=body,
        method="POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        echoed = json.loads(resp.read())
    assert json.loads(echoed["body"]) == {
        "image": "a:b",
        "callbackUrl": f"{stack.client.url}/api",
        "cb": "${BROKER_CLIENT_URL}/api",  # not a place BROKER_CLIENT_VAR_SUB_ALLOW names
    }


def test_3_sixty_megabytes_stream_intact_with_bounded_client_memory(stack: Stack) -> None:
    process = psutil.Process(stack.client.pid)
    baseline = process.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    digest = hashlib.sha256()
    size = 0
    try:
        with urllib.request.urlopen(stack.broker_url(f"/list/big/{BIG}"), timeout=120) as resp:
            assert resp.status == 200
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    finally:
        done.set()
        sampler.join()
    assert size == BIG
    assert digest.hexdigest() == big_sha256(BIG)
    growth = (peak - baseline) / 1e6
    assert growth < 30, f"client RSS grew by {growth:.1f} MB"


def test_4_ws_response_header_uses_the_ack_path(stack: Stack) -> None:
    status, headers, body = get(stack.broker_url("/healthcheck"), {"x-broker-ws-response": "true"})
    assert status == 200
    assert json.loads(body)["path_qs"] == "/healthcheck"
    # only the ack path puts this marker into the answer's headers
    assert headers.get("x-broker-ws-response") == "true"
    # the client logs the exchange after it has sent the ack
    log = wait_for_log(
        stack.client.process.log_text, '"url": "/healthcheck"', '"medium": "websocket"'
    )
    assert '"url": "/healthcheck"' in log and '"medium": "websocket"' in log


def test_4_ack_path_caps_large_bodies_with_body_too_large(stack: Stack) -> None:
    status, _headers, body = get(
        stack.broker_url("/list/big/21000000"), {"x-broker-ws-response": "1"}
    )
    assert status == 502
    assert json.loads(body)["code"] == "BODY_TOO_LARGE"


def test_4_path_outside_rules_gets_filter_blocked(stack: Stack) -> None:
    before = len(stack.apps.agent.seen)
    status, _headers, body = get(stack.broker_url("/v2/_catalog"))
    assert status == 401
    doc = json.loads(body)
    assert (
        doc["code"] == "FILTER_BLOCKED"
        and doc["message"] == "blocked"
        and doc["url"] == "/v2/_catalog"
    )
    assert len(stack.apps.agent.seen) == before


@pytest.mark.parametrize(
    "trick",
    [
        "/list/%2e%2e/x",
        "/list/%2E%2E/v2/_catalog",
        "/list/..%2fv2%2f_catalog",
        "/list/a%2f..%2f..%2fx",
        "/list/../v2/_catalog",
        "/list/./x/../../v2",
        "/list//x",
        "/list/%252e%252e/x",
        "/list/a%5c..%5cx",
        "/LIST/%2e%2e/%2e%2e/etc/passwd",
    ],
)
def test_4_traversal_tricks_never_reach_the_agent(stack: Stack, trick: str) -> None:
    before = agent_paths(stack)
    status, body = raw_get(stack.server.port, f"/broker/{stack.token}{trick}")
    after = agent_paths(stack)
    assert after == before, f"{trick} reached the agent as {after[len(before) :]}"
    assert status in (400, 401, 404), (status, body[:200])


def test_5_callback_reaches_the_server_upstream(stack: Stack) -> None:
    payload = {"result": "scan done", "packages": ["a", "b"]}
    request = urllib.request.Request(
        f"{stack.client.url}/api/v2/import/result",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 201
        answer = json.loads(resp.read())
    assert answer["received"] == "/api/v2/import/result"
    seen = stack.apps.upstream.seen[-1]
    assert seen["method"] == "POST" and seen["path_qs"] == "/api/v2/import/result"
    assert json.loads(seen["body"]) == payload
    assert seen["headers"]["x-broker-token"] == stack.token


def test_5_local_callback_outside_public_rules_is_blocked(stack: Stack) -> None:
    before = len(stack.apps.upstream.seen)
    request = urllib.request.Request(f"{stack.client.url}/api/v2/other", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    assert info.value.code == 401
    assert json.loads(info.value.read())["code"] == "FILTER_BLOCKED"
    assert len(stack.apps.upstream.seen) == before


def test_7_connection_status_lists_our_client_with_version_and_filters(stack: Stack) -> None:
    status, body = snyk_broker.connection_status(stack.server.url, stack.token)
    assert status == 200 and body["ok"] is True
    ours = body["clients"]
    assert len(ours) == 2  # primary and secondary
    shipped = json.loads(Path("broker_client/accept/container-registry-agent.json").read_text())
    for entry in ours:
        assert entry["version"] == CLIENT_VERSION
        assert entry["filters"] == shipped


def test_6_server_restart_client_reconnects_and_serves_again(stack: Stack) -> None:
    stack.server.restart()
    clients = snyk_broker.wait_for_clients(stack.server.url, stack.token, 2, timeout=30)
    assert all(c["version"] == CLIENT_VERSION for c in clients)
    status, _headers, body = get(stack.broker_url("/list?page=2"))
    assert status == 200 and json.loads(body)["path_qs"] == "/list?page=2"
    health = json.loads(get(f"{stack.client.url}/healthcheck")[2])
    assert [h["websocketConnectionOpen"] for h in health] == [True, True]


def test_service_channel_filters_reload_and_unknown_command(stack: Stack) -> None:
    # the server only offers the service channel to clients >= 4.209.0: our version qualifies
    status, _h, body = get(f"{stack.server.url}/service/{stack.token}/filters/reload")
    assert status == 200 and b"Filters reloaded" in body
    status, _h, _body = get(f"{stack.server.url}/service/{stack.token}/nonsense")
    assert status == 400


def test_many_requests_in_flight_each_get_their_own_answer(stack: Stack) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> str:
        status, _h, body = get(stack.broker_url(f"/list/repo-{i}?page={i}"))
        assert status == 200
        return str(json.loads(body)["path_qs"])

    with ThreadPoolExecutor(max_workers=48) as pool:
        answers = list(pool.map(one, range(200)))
    assert answers == [f"/list/repo-{i}?page={i}" for i in range(200)]


def test_large_request_body_reaches_the_agent_intact(stack: Stack) -> None:
    payload = json.dumps({"image": "a:b", "blob": "x" * 3_000_000}).encode()
    request = urllib.request.Request(
        stack.broker_url("/scan"),
        data=payload,
        method="POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        echoed = json.loads(resp.read())
    assert (
        hashlib.sha256(echoed["body"].encode()).hexdigest() == hashlib.sha256(payload).hexdigest()
    )
    assert echoed["headers"]["content-length"] == str(len(payload))


def test_agent_dropping_mid_body_never_yields_a_complete_looking_answer(stack: Stack) -> None:
    size = 4_000_000
    received = 0
    declared: str | None = None
    try:
        with urllib.request.urlopen(stack.broker_url(f"/list/broken/{size}"), timeout=30) as resp:
            declared = resp.headers.get("content-length")
            while chunk := resp.read(65536):
                received += len(chunk)
    except (http.client.IncompleteRead, ConnectionError, urllib.error.URLError):
        pass  # the caller saw the failure as an error
    assert received < size
    # a truncated body may only end "cleanly" when its declared length exposes the truncation
    assert declared == str(size) or received == 0, (declared, received)
    failed = "posting the response to the server failed"
    assert failed in wait_for_log(stack.client.process.log_text, failed)


def test_8_no_secret_value_in_any_log_line(stack: Stack) -> None:
    # not SECRET_BASE: a registry's address is not a secret (issue 10 item 10)
    secrets: list[Any] = [stack.token, SECRET_USERNAME, SECRET_PASSWORD]
    blob = get(
        stack.broker_url("/list"),
        {"x-broker-var-sub": "authorization", "authorization": "${CR_CREDENTIALS}"},
    )[2]
    credentials = json.loads(blob)["headers"]["authorization"]
    secrets += [credentials, base64.b64decode(credentials).decode().strip()]
    logs = sorted(stack.workdir.glob("our-client-*.log"))
    assert logs and all(p.stat().st_size > 0 for p in logs)
    text = "".join(p.read_text() for p in logs)
    assert '"level": "debug"' in text  # the scan covered debug-level wire detail too
    assert find_secrets(logs, secrets) == []
