"""The upstream must not steer the agent (issue 10, items 2, 4 and 5; client side).

Two hostile servers in front of our broker client and the echo test agent: the real snyk-broker
server from npm (whatever an HTTP caller of ``/broker/<token>/...`` can make it relay), and a
scripted server on the project's protocol core (request lines no HTTP front would pass).
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploy import stack as st
from shared.credentials import build_credentials_json, encode_credentials
from tests.broker_client.conftest import (
    SECRET_BLOB,
    SECRET_PASSWORD,
    Apps,
    OurClient,
    behind_snyk_server,
    start_our_client,
)
from tests.broker_client.hostile_server import HostileServer
from tests.broker_client.log_scan import find_secrets, wait_for_log

#: what a hostile server would hand the agent: its own registry, inside the customer network
FOREIGN_BLOB = encode_credentials(
    build_credentials_json(
        "generic-cr", base="http://10.0.0.7:5000", username="attacker", password="attacker-pw"
    )
)


#: a complete websocket handshake request, as a caller of /broker/<token>/... could send it
UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


# --------------------------------------------------------------------------- the real snyk server


@dataclass
class Front:
    """A hostile front: ``base`` is ``<server>/broker/<token>``, ``client`` ours behind it."""

    base: str
    client: OurClient


@pytest.fixture(scope="module")
def snyk(apps: Apps, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    workdir = tmp_path_factory.mktemp("hostile-snyk")
    extra = {"AWS_SECRET_ACCESS_KEY": "aws-Secret-0f9e8d7c"}
    with behind_snyk_server(apps, workdir, extra) as (server, client):
        yield Front(f"{server.url}/broker/{client.token}", client)


def call(
    url: str,
    *,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    all_headers = {"content-type": "application/json"} if data else {}
    all_headers.update(headers or {})
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def raw(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """A GET whose path goes out byte for byte (urllib would normalise or quote it)."""
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=30)
    try:
        conn.putrequest("GET", parsed.path + path, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def agent_authorization(snyk: Front, headers: dict[str, str]) -> str:
    """GET /list with ``headers`` (and a fresh request id) through the front; returns the id
    after checking that the agent got this client's own credentials."""
    request_id = str(uuid.uuid4())
    status, echoed = call(f"{snyk.base}/list", headers={**headers, "snyk-request-id": request_id})
    assert status == 200
    assert echoed["headers"]["authorization"] == SECRET_BLOB
    return request_id


def test_item_2_server_authorization_is_replaced_by_the_clients_credentials(
    snyk: Front,
) -> None:
    request_id = agent_authorization(snyk, {"authorization": FOREIGN_BLOB})
    log = wait_for_log(snyk.client.process.log_text, "Authorization sent by the server dropped")
    (line,) = [x for x in log.splitlines() if "Authorization sent by the server dropped" in x]
    assert json.loads(line)["request_id"] == request_id
    assert FOREIGN_BLOB not in log and "attacker-pw" not in log


def test_item_2_placeholder_or_no_authorization_is_routine(snyk: Front) -> None:
    placeholder = {"authorization": "${CR_CREDENTIALS}", "x-broker-var-sub": "authorization"}
    ids = [agent_authorization(snyk, placeholder), agent_authorization(snyk, {})]
    warnings = [
        line for line in snyk.client.process.log_text().splitlines() if "server dropped" in line
    ]
    assert not [line for line in warnings for request_id in ids if request_id in line]


def test_item_2_credentials_body_field_from_the_server_is_dropped(
    snyk: Front,
) -> None:
    base, client = snyk.base, snyk.client
    body = {"images": ["a:b"], "credentials": FOREIGN_BLOB, "BROKER_VAR_SUB": ["credentials"]}
    status, echoed = call(f"{base}/scan", method="POST", body=body)
    assert status == 200
    assert json.loads(echoed["body"]) == {"images": ["a:b"]}
    assert echoed["headers"]["authorization"] == SECRET_BLOB
    wait_for_log(client.process.log_text, "'credentials' body field sent by the server dropped")


def test_item_4_echoed_fields_keep_client_variables_literal(
    snyk: Front,
) -> None:
    base, client = snyk.base, snyk.client
    fields = {
        "requestId": "${BROKER_TOKEN}",
        "context": "${CR_PASSWORD}/${CR_CREDENTIALS}/${AWS_SECRET_ACCESS_KEY}",
        "callbackUrl": "${BROKER_CLIENT_URL}",
    }
    status, echoed = call(
        f"{base}/scan",
        method="POST",
        body={"images": ["a:b"], **fields, "BROKER_VAR_SUB": list(fields)},
        headers={"x-echo": "${BROKER_TOKEN}", "x-broker-var-sub": "x-echo"},
    )
    assert status == 200
    forwarded = json.loads(echoed["body"])
    assert forwarded["requestId"] == "${BROKER_TOKEN}"
    assert forwarded["context"] == fields["context"]
    assert forwarded["callbackUrl"] == client.url  # the one default body place
    assert echoed["headers"]["x-echo"] == "${BROKER_TOKEN}"
    text = json.dumps(echoed)
    for secret in (client.token, SECRET_PASSWORD, "aws-Secret-0f9e8d7c"):
        assert secret not in text
    log = wait_for_log(client.process.log_text, "AWS_SECRET_ACCESS_KEY in body:context")
    assert "BROKER_TOKEN in body:requestId" in log and "BROKER_TOKEN in header:x-echo" in log


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/list/a%0d%0aX-Injected:%201", "percent-encoded control character %0d"),
        ("/list/a%09b", "percent-encoded control character %09"),
        ("/list/a%00", "percent-encoded control character %00"),
        ("/list/..;/admin", "path parameter on a dot segment"),
        ("/list/%2e%2e;/admin", "path parameter on a dot segment"),
        ("/list/%2e%2e%3b/admin", "path parameter on a dot segment"),
        ("/list/.;x/admin", "path parameter on a dot segment"),
        ("/list/%EF%BC%8E%EF%BC%8E/admin", "U+FF0E FULLWIDTH FULL STOP"),
        ("/list/a%EF%BC%8Fb", "U+FF0F FULLWIDTH SOLIDUS"),
        ("/list/a%E2%88%95b", "U+2215 DIVISION SLASH"),
        ("/list/%E2%80%A4%E2%80%A4/x", "U+2024 ONE DOT LEADER"),
    ],
)
def test_item_5_suspicious_paths_are_refused_with_400(
    snyk: Front, apps: Apps, path: str, reason: str
) -> None:
    base = snyk.base
    before = len(apps.agent.seen)
    status, body = raw(base, path)
    assert status == 400, body
    assert body["code"] == "BAD_REQUEST" and reason in body["reason"]
    assert len(apps.agent.seen) == before  # nothing reached the agent


def test_item_5_override_and_routing_headers_never_reach_the_agent(
    snyk: Front,
) -> None:
    base = snyk.base
    sent = {
        "X-HTTP-Method-Override": "DELETE",
        "X-HTTP-Method": "DELETE",
        "X-Method-Override": "DELETE",
        "X-Original-URL": "/admin",
        "X-Rewrite-URL": "/admin",
        "X-Forwarded-Host": "internal.example",
        "X-Forwarded-Prefix": "/admin",
        "Forwarded": "for=10.0.0.1;host=internal.example",
    }
    status, echoed = raw(base, "/list", sent)
    assert status == 200
    seen = echoed["headers"]
    for name in sent:
        assert name.lower() not in seen
    assert seen["host"] == urllib.parse.urlsplit(snyk.client.env["CR_AGENT_URL"]).netloc


def test_item_5_websocket_upgrade_gets_an_answer(
    snyk: Front,
) -> None:
    base = snyk.base
    status, body = call(f"{base}/list", headers=UPGRADE)
    assert status == 400
    assert "Upgrade: websocket" in body["reason"]


def test_issue_16_item_7_debug_wire_log_holds_no_piece_of_the_credentials(
    snyk: Front,
) -> None:
    """The agent echoes the substituted CR_CREDENTIALS; the frame carrying it is withheld."""
    base, client = snyk.base, snyk.client
    status, echoed = call(f"{base}/list/echo")
    assert status == 200 and echoed["headers"]["authorization"] == SECRET_BLOB
    log = wait_for_log(client.process.log_text, "frame withheld")
    assert '"event": "wire"' in log  # DEBUG is on: frames are logged
    pieces = {SECRET_BLOB[i : i + 12] for i in range(len(SECRET_BLOB) - 12)}
    assert not [p for p in pieces if p in log]
    assert find_secrets([client.process.log_path], [SECRET_PASSWORD, FOREIGN_BLOB]) == []


# --------------------------------------------------------------------------- a scripted server


@pytest.fixture(scope="module")
def hostile(
    apps: Apps, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HostileServer, OurClient]]:
    server = HostileServer()
    workdir: Path = tmp_path_factory.mktemp("hostile-scripted")
    client = start_our_client(workdir, server_url=server.url, agent_url=apps.agent_url)
    try:
        yield server, client
    finally:
        client.stop()
        server.close()


@pytest.mark.parametrize(
    ("method", "url", "reason"),
    [
        ("GET", "/list\r\nX-Injected: 1", "control character '\\r' in the request URL"),
        ("GET", "/list/a\nb", "control character '\\n' in the request URL"),
        ("GET", "/list/a\tb", "control character '\\t' in the request URL"),
        ("GET", "/list/a\x00b", "control character '\\x00' in the request URL"),
        ("GET", "/list?x=1\r\nHost: evil", "control character '\\r' in the request URL"),
        ("GET", "/list/\uff0e\uff0e/x", "U+FF0E FULLWIDTH FULL STOP"),
        ("GET", "/list/a\u2044b", "U+2044 FRACTION SLASH"),
    ],
)
def test_item_5_raw_control_characters_and_lookalikes_from_the_server_get_400(
    hostile: tuple[HostileServer, OurClient], apps: Apps, method: str, url: str, reason: str
) -> None:
    server, _ = hostile
    before = len(apps.agent.seen)
    answer = server.ask({"url": url, "method": method, "headers": {}})
    assert answer["status"] == 400
    body = answer["body"] if isinstance(answer["body"], dict) else json.loads(answer["body"])
    assert body["code"] == "BAD_REQUEST" and reason in body["reason"]
    assert len(apps.agent.seen) == before


def test_a_malformed_request_event_gets_a_400_ack_naming_the_field(
    hostile: tuple[HostileServer, OurClient], apps: Apps
) -> None:
    server, _ = hostile
    before = len(apps.agent.seen)
    answer = server.ask({"method": "GET", "headers": {}})
    assert answer == {
        "status": 400,
        "body": {"code": "BAD_REQUEST", "message": "request event has no url"},
        "headers": {},
    }
    assert list(answer) == ["status", "body", "headers"]  # the client's order (shared codec)
    assert len(apps.agent.seen) == before


def test_item_2_scripted_server_cannot_pass_credentials_either(
    hostile: tuple[HostileServer, OurClient],
) -> None:
    server, client = hostile
    answer = server.ask(
        {
            "url": "/list",
            "method": "GET",
            "headers": {"Authorization": FOREIGN_BLOB, "HOST": "10.0.0.7:5000"},
        }
    )
    assert answer["status"] == 200
    body = answer["body"] if isinstance(answer["body"], dict) else json.loads(answer["body"])
    assert body["headers"]["authorization"] == SECRET_BLOB
    assert body["headers"]["host"] == urllib.parse.urlsplit(client.env["CR_AGENT_URL"]).netloc


def test_no_secret_reaches_the_clients_log(hostile: tuple[HostileServer, OurClient]) -> None:
    _, client = hostile
    hits = find_secrets([client.process.log_path], [SECRET_PASSWORD, SECRET_BLOB, FOREIGN_BLOB])
    assert hits == []


def test_item_5_websocket_upgrade_through_our_server_gets_an_answer(
    apps: Apps, tmp_path: Path
) -> None:
    token = str(uuid.uuid4())
    server = st.start_broker_server(tmp_path, token=token, upstream_url=apps.upstream_url)
    client = start_our_client(
        tmp_path, server_url=server.url, agent_url=apps.agent_url, token=token
    )
    try:
        st.wait_for_connection(server.url, token)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request(
            "GET",
            f"/broker/{token}/list",
            headers=UPGRADE,
        )
        resp = conn.getresponse()
        assert resp.status == 400
        assert "Upgrade: websocket" in json.loads(resp.read())["reason"]
    finally:
        client.stop()
        server.stop()
