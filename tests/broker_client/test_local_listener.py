"""The client's local listener, with no broker server reachable: health, filters, limits, relay
back-pressure, systemcheck. Our client runs as a real subprocess."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.processes import refused_port
from tests.broker_client.conftest import (
    SECRET_BLOB,
    SECRET_PASSWORD,
    SECRET_USERNAME,
    Apps,
    OurClient,
    start_our_client,
)
from tests.broker_client.log_scan import find_secrets

LIMIT = 1_000_000


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("listener")


@pytest.fixture(scope="module")
def lonely(apps: Apps, workdir: Path) -> Iterator[OurClient]:
    """A client whose broker server does not exist (nothing listens on that port)."""
    client = start_our_client(
        workdir,
        server_url=f"http://127.0.0.1:{refused_port()}",
        agent_url=apps.agent_url,
        extra={
            "BROKER_WEBSERVER_REQUEST_TIMEOUT": "800",
            "BROKER_CLIENT_OUTBOX_LIMIT": "1",
            "BROKER_CLIENT_MAX_REQUEST_BODY": str(LIMIT),
            "BROKER_CLIENT_VALIDATION_URL": f"{apps.agent_url}/validate",
            "BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER_POOL": "good-cred-1,bad-cred-2",
        },
    )
    yield client
    client.stop()


def call(
    url: str,
    *,
    data: bytes | None = None,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_healthcheck_is_500_with_one_entry_per_socket_while_disconnected(lonely: OurClient) -> None:
    status, body = call(f"{lonely.url}/healthcheck")
    assert status == 500
    assert [entry["websocketConnectionOpen"] for entry in body] == [False, False]
    assert [entry["brokerServerUrl"].split("connection_role=")[1] for entry in body] == [
        "primary",
        "secondary",
    ]


def test_filters_returns_the_loaded_rules(lonely: OurClient) -> None:
    status, body = call(f"{lonely.url}/filters")
    shipped = json.loads(Path("broker_client/accept/container-registry-agent.json").read_text())
    assert status == 200 and body == shipped


def test_body_over_the_limit_gets_413_with_a_reason(lonely: OurClient) -> None:
    status, body = call(
        f"{lonely.url}/api/v2/import/result", data=b"x" * (LIMIT + 1), method="POST"
    )
    assert status == 413
    assert body["code"] == "BODY_TOO_LARGE" and str(LIMIT) in body["message"]


def test_chunked_body_over_the_limit_gets_413(lonely: OurClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"y" * 100_000

    request = urllib.request.Request(
        f"{lonely.url}/api/v2/import/result",
        data=chunks(),
        method="POST",
        headers={"Transfer-Encoding": "chunked"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    assert info.value.code == 413
    assert json.loads(info.value.read())["code"] == "BODY_TOO_LARGE"


def test_callback_outside_public_rules_is_blocked_locally(lonely: OurClient) -> None:
    status, body = call(f"{lonely.url}/v2/_catalog", data=b"{}", method="POST")
    assert status == 401
    assert body == {
        "code": "FILTER_BLOCKED",
        "message": "blocked",
        "reason": "Request does not match any accept rule, blocking HTTP request",
        "url": "/v2/_catalog",
    }


def test_callback_while_disconnected_waits_in_a_bounded_outbox(lonely: OurClient) -> None:
    results: list[int] = []

    def post() -> None:
        results.append(call(f"{lonely.url}/api/v2/import/done", data=b"{}", method="POST")[0])

    first = threading.Thread(target=post)
    started = time.monotonic()
    first.start()
    # the first callback now sits in the outbox (limit 1); nothing outside shows it
    time.sleep(0.3)
    second_status, second = call(f"{lonely.url}/api/v2/import/done", data=b"{}", method="POST")
    first.join()
    assert second_status == 503 and second["code"] == "BROKER_UNAVAILABLE"
    assert results == [504]  # no server within BROKER_WEBSERVER_REQUEST_TIMEOUT
    assert time.monotonic() - started >= 0.75


def test_systemcheck_counts_every_credential_and_masks_them(lonely: OurClient, apps: Apps) -> None:
    status, body = call(f"{lonely.url}/systemcheck")
    assert (
        status == 500
    )  # one of the two credentials fails; snyk-broker would only look at the last
    assert [entry["ok"] for entry in body] == [True, False]
    assert [entry["maskedCredentials"] for entry in body] == ["goo***d-1", "bad***d-2"]
    assert body[1]["error"] == "Failed due to invalid credentials"
    assert body[0]["brokerClientValidationUrl"] == "${CR_AGENT_URL}/validate"
    assert body[0]["brokerClientValidationUrlStatusCode"] == 200


def test_systemcheck_defaults_to_cr_credentials_as_authorization(apps: Apps, workdir: Path) -> None:
    client = start_our_client(
        workdir,
        server_url=f"http://127.0.0.1:{refused_port()}",
        agent_url=apps.agent_url,
        extra={"BROKER_CLIENT_VALIDATION_URL": f"{apps.agent_url}/validate"},
    )
    try:
        status, body = call(f"{client.url}/systemcheck")
    finally:
        client.stop()
    assert status == 200 and len(body) == 1 and body[0]["ok"] is True
    assert body[0]["maskedCredentials"] == SECRET_BLOB[:3] + "***" + SECRET_BLOB[-3:]
    assert apps.agent.seen[-1]["headers"]["authorization"] == SECRET_BLOB


def test_systemcheck_without_validation_url_is_500(apps: Apps, workdir: Path) -> None:
    client = start_our_client(
        workdir, server_url=f"http://127.0.0.1:{refused_port()}", agent_url=apps.agent_url
    )
    try:
        status, body = call(f"{client.url}/systemcheck")
    finally:
        client.stop()
    assert status == 500 and body[0]["ok"] is False and body[0]["maskedCredentials"] is None


def test_health_checks_report_the_unreachable_server(lonely: OurClient) -> None:
    status, body = call(f"{lonely.url}/health/checks")
    assert status == 500
    assert body[0]["id"] == "broker-server-status" and body[0]["status"] == "error"
    status, single = call(f"{lonely.url}/health/checks/broker-server-status")
    assert status == 500 and single["id"] == "broker-server-status"
    assert call(f"{lonely.url}/health/checks/nope")[0] == 404


def test_post_filters_reloads_the_accept_file(apps: Apps, workdir: Path) -> None:
    accept = workdir / "reloadable.json"
    accept.write_text(json.dumps({"private": [], "public": [{"method": "POST", "path": "/first"}]}))
    client = start_our_client(
        workdir,
        server_url=f"http://127.0.0.1:{refused_port()}",
        agent_url=apps.agent_url,
        extra={"ACCEPT": str(accept)},
    )
    try:
        accept.write_text(
            json.dumps({"private": [], "public": [{"method": "POST", "path": "/second"}]})
        )
        status, body = call(f"{client.url}/filters", data=b"", method="POST")
        assert status == 200 and body["public"][0]["path"] == "/second"
        assert call(f"{client.url}/filters")[1]["public"][0]["path"] == "/second"
        assert call(f"{client.url}/first", data=b"{}", method="POST")[0] == 401  # old rule gone
        accept.write_text("{ not json: [")
        status, body = call(f"{client.url}/filters", data=b"", method="POST")
        assert status == 400 and body["code"] == "INVALID_FILTERS" and "ACCEPT:" in body["message"]
        assert call(f"{client.url}/filters")[1]["public"][0]["path"] == "/second"  # kept
    finally:
        client.stop()


def test_no_secret_in_the_logs_of_these_clients(lonely: OurClient, workdir: Path) -> None:
    logs = sorted(workdir.glob("our-client-*.log"))
    assert logs
    secrets = [
        lonely.token,
        SECRET_USERNAME,
        SECRET_PASSWORD,
        SECRET_BLOB,
        "good-cred-1",
        "bad-cred-2",
    ]
    assert find_secrets(logs, secrets) == []
