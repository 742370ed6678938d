"""A custom ACCEPT file through the real snyk-broker server: auth schemes with ${VAR}, `valid`
conditions, `_POOL` round robin over two agents and over credentials (one member per request),
origins with embedded credentials."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.broker_client.agent import Recorder, agent_app
from tests.broker_client.conftest import Apps, OurClient, start_our_client
from tests.support import snyk_broker

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def stack(
    apps: Apps, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[snyk_broker.SnykBroker, OurClient, Recorder]]:
    snyk_broker.require_snyk_broker()
    workdir = tmp_path_factory.mktemp("rules")
    second = Recorder()
    second_port = apps.background.serve(agent_app(second))
    accept = workdir / "accept.yaml"
    host = apps.agent_url.removeprefix("http://")
    accept.write_text(
        f"""
private:
  - {{method: GET, path: /bearer/*, origin: "${{CR_AGENT_URL}}", auth: {{scheme: bearer, token: "${{MY_TOKEN}}"}}}}
  - {{method: GET, path: /basic/:one, origin: "${{CR_AGENT_URL}}", auth: {{scheme: basic, username: "${{MY_USER}}", password: pw}}}}
  - {{method: GET, path: /userinfo, origin: "http://alice:s%40fe@{host}"}}
  - method: POST
    path: /scan
    origin: "${{CR_AGENT_URL}}"
    valid:
      - {{path: kind, value: image}}
      - {{header: content-type, values: [application/json]}}
  - {{method: any, path: /pooled/*, origin: "${{AGENTS}}"}}
  - {{method: GET, path: /pair/*, origin: "${{CR_AGENT_URL}}", auth: {{scheme: basic, username: "${{PAIR}}", password: "${{PAIR}}"}}}}
public: []
"""
    )
    server = snyk_broker.start_server(
        workdir / "server", accept=snyk_broker.server_accept(apps.upstream_url)
    )
    client = start_our_client(
        workdir,
        server_url=server.url,
        agent_url=apps.agent_url,
        extra={
            "ACCEPT": str(accept),
            "MY_TOKEN": "tok-123",
            "MY_USER": "bob",
            "AGENTS_POOL": f"{apps.agent_url},http://127.0.0.1:{second_port}",
            "PAIR_POOL": "x,y",
        },
    )
    try:
        snyk_broker.wait_for_clients(server.url, client.token, 2, timeout=20)
        yield server, client, second
    finally:
        client.stop()
        server.stop()


def call(
    url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=data, headers=headers or {}, method="POST" if data else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_auth_schemes_set_authorization(stack: tuple, apps: Apps) -> None:
    server, client, _ = stack
    base = f"{server.url}/broker/{client.token}"
    assert call(f"{base}/bearer/x")[1]["headers"]["authorization"] == "Bearer tok-123"
    expected = "Basic " + base64.b64encode(b"bob:pw").decode()
    assert call(f"{base}/basic/one")[1]["headers"]["authorization"] == expected
    assert call(f"{base}/basic/one/two")[0] == 401  # :one is a single segment
    userinfo = "Basic " + base64.b64encode(b"alice:s@fe").decode()
    assert call(f"{base}/userinfo")[1]["headers"]["authorization"] == userinfo


def test_valid_conditions_through_the_server(stack: tuple) -> None:
    server, client, _ = stack
    url = f"{server.url}/broker/{client.token}/scan"
    json_header = {"content-type": "application/json"}
    assert call(url, data=b'{"kind": "image"}', headers=json_header)[0] == 200
    assert call(url, data=b'{"kind": "other"}', headers=json_header)[0] == 401
    assert call(url, data=b'{"kind": "image"}', headers={"content-type": "text/plain"})[0] == 401


def test_pool_origin_rotates_between_agents(stack: tuple, apps: Apps) -> None:
    server, client, second = stack
    before_first, before_second = len(apps.agent.seen), len(second.seen)
    for i in range(4):
        assert call(f"{server.url}/broker/{client.token}/pooled/{i}")[0] == 200
    assert len(apps.agent.seen) - before_first == 2
    assert len(second.seen) - before_second == 2


def test_one_request_uses_one_pool_member_wherever_its_rule_names_it(stack: tuple) -> None:
    server, client, _ = stack
    sent = [
        call(f"{server.url}/broker/{client.token}/pair/{i}")[1]["headers"]["authorization"]
        for i in range(3)
    ]
    assert [base64.b64decode(s.removeprefix("Basic ")).decode() for s in sent] == [
        "x:x",
        "y:y",
        "x:x",
    ]
