"""A hostile upstream cannot steer the agent (issue 10, agent side), through the real path:
broker server (snyk-broker from npm, or ours) -> our broker client -> our agent ->
Debian's docker-registry. The server's requests are what an attacker on the upstream side
would send; an "internal host" (a recording HTTP server) stands for what it aims at.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from deploy import stack as st
from deploy.upstream_receiver import UpstreamReceiver
from shared.credentials import build_credentials_json, encode_credentials
from tests.e2e.conftest import REGISTRY_PASSWORD, Broker, Registry, recording_server

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def internal_host() -> Iterator[UpstreamReceiver]:
    """Something in the customer network the upstream should never reach through the agent."""
    yield from recording_server()


def test_callbacks_go_to_the_configured_client_not_where_the_request_says(
    broker: Broker, registry: Registry, receiver: UpstreamReceiver, internal_host: UpstreamReceiver
) -> None:
    sample = registry.images[0]
    body = {"images": [sample.reference], "callbackUrl": f"{internal_host.url}/x"}
    status, answer = broker.request("POST", "/scan", body=body)
    assert status == 400, answer
    assert isinstance(answer, dict) and answer["error"]["field"] == "callbackUrl"
    # without callbackUrl the results come back the one configured way
    job = st.request_scan(broker.server_url, broker.token, [sample.reference])
    assert receiver.wait_for_job(job, timeout=60)["succeeded"] == 1
    assert not internal_host.requests


def test_the_agent_answers_only_its_broker_client(broker: Broker) -> None:
    # straight to the agent, as anything else in the customer network could
    request = urllib.request.Request(f"{broker.agent.url}/list")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401
    assert json.loads(refused.value.read())["error"]["field"] == "X-Crbroker-Agent-Secret"
    # a secret header written by the server is not the client's: the client sends its own
    status, body = broker.request(
        "GET", "/list", headers={"X-Crbroker-Agent-Secret": "guessed-by-the-upstream-0000"}
    )
    assert status == 200, body


def test_a_server_written_blob_cannot_send_the_agent_to_another_host(
    broker: Broker, internal_host: UpstreamReceiver
) -> None:
    blob = encode_credentials(
        build_credentials_json("generic-cr", base=internal_host.url, username="u", password="p")
    )
    status, body = broker.request(
        "GET", "/list", headers={"authorization": blob}, credentials=False
    )
    # the agent refuses a registry outside CR_ALLOWED_REGISTRIES (403 naming it); a client
    # that replaces the server's Authorization with its own answers from the real registry
    assert status in (200, 403), body
    if status == 403:
        assert isinstance(body, dict)
        assert body["error"]["registry"] == internal_host.url.split("://", 1)[1]
    assert not internal_host.requests, "the agent reached a host the customer did not configure"


@pytest.mark.parametrize("field", ["requestId", "context.orgId"], ids=["requestId", "context"])
@pytest.mark.parametrize("variable", ["CR_PASSWORD", "CR_CREDENTIALS", "CR_AGENT_SECRET"])
def test_substituted_variables_are_not_echoed_upstream(
    broker: Broker,
    registry: Registry,
    receiver: UpstreamReceiver,
    field: str,
    variable: str,
) -> None:
    body: dict[str, object] = {"images": [registry.images[0].reference]}
    placeholder = "${" + variable + "}"
    if field == "requestId":
        body["requestId"] = placeholder
    else:
        body["context"] = {"orgId": placeholder}
    body["BROKER_VAR_SUB"] = [field]
    before = len(receiver.requests)
    # substituted by the client (or, where substitution is limited, left as the placeholder):
    # refused either way, by the agent's check for its request's secrets or by the shape
    status, answer = broker.request("POST", "/scan", body=body)
    assert status == 400, answer
    assert isinstance(answer, dict) and answer["error"]["field"].startswith(field.split(".")[0])
    assert REGISTRY_PASSWORD not in json.dumps(answer)
    assert len(receiver.requests) == before


def test_no_registry_password_or_agent_secret_reaches_upstream_or_a_log(
    broker: Broker, receiver: UpstreamReceiver
) -> None:
    secret = broker.agent.env["CR_AGENT_SECRET"]
    seen = receiver.all_bytes()
    assert REGISTRY_PASSWORD.encode() not in seen and secret.encode() not in seen
    for log in broker.logs:
        text = log.read_text(errors="replace")
        assert REGISTRY_PASSWORD not in text and secret not in text, log.name
