"""The upstream writes the requests; it must not steer the agent (issue 10, agent side).

Shared secret on every API route, callbacks only to the configured broker client, registries
only from CR_ALLOWED_REGISTRIES, and nothing echoed upstream that carries the request's
secrets or an unbounded request-supplied value.
"""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from cr_agent.service.app import SECRET_HEADER
from cr_agent.service.callback_target import callback_base, same_target
from cr_agent.service.errors import ApiError
from cr_agent.service.settings import SettingsError, load_settings
from tests.cr_agent.service.agent import SECRET, Agent, AgentFactory, creds_for
from tests.cr_agent.service.images import debian_image, push_image
from tests.fakes.callback_receiver import CallbackReceiver
from tests.support.registry import RunningRegistry

RESULT = "/api/v2/import/result"
DONE = "/api/v2/import/done"


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    rec = await CallbackReceiver().start()
    yield rec
    await rec.stop()


async def raw(
    agent: Agent, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, Any]:
    """A request from a session that does not send the test agent's secret by default."""
    async with aiohttp.ClientSession() as http:
        async with http.request(method, agent.url + path, headers=headers, json=body) as resp:
            return resp.status, await resp.json(content_type=None)


# --------------------------------------------------------------------------- shared secret


def test_no_secret_and_no_switch_off_is_a_settings_error_naming_the_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({})
    assert str(caught.value).startswith("CR_AGENT_SECRET:")
    assert "CR_AGENT_AUTH=disabled" in str(caught.value)
    assert load_settings({"CR_AGENT_AUTH": "disabled"}).CR_AGENT_SECRET is None
    assert load_settings({"CR_AGENT_AUTH": "Disabled "}).CR_AGENT_AUTH == "disabled"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CR_AGENT_SECRET": "short"}, "CR_AGENT_SECRET"),
        ({"CR_AGENT_SECRET": "has a space inside it"}, "CR_AGENT_SECRET"),
        ({"CR_AGENT_SECRET": SECRET, "CR_AGENT_AUTH": "maybe"}, "CR_AGENT_AUTH"),
    ],
)
def test_bad_secret_settings_name_the_variable_not_the_value(
    env: dict[str, str], variable: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert str(caught.value).startswith(variable)
    assert env["CR_AGENT_SECRET"] not in str(caught.value)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/list"),
        ("GET", "/list/some/repo"),
        ("GET", "/systemcheck"),
        ("GET", "/validate-credentials"),
        ("GET", "/image-metadata/repo/1"),
        ("GET", "/get-state-identifier?image=repo:1"),
        ("POST", "/scan"),
        ("POST", "/discover"),
        ("GET", "/scan/some-job"),
        ("GET", "/no-such-route"),
    ],
)
async def test_api_routes_answer_401_without_the_secret(
    agent: Agent, plain_registry: RunningRegistry, method: str, path: str
) -> None:
    creds = creds_for(plain_registry)
    body = {"images": ["repo:1"]} if method == "POST" else None
    for headers in ({}, {SECRET_HEADER: SECRET[:-1] + "x"}, {SECRET_HEADER: SECRET + "x"}):
        status, answer = await raw(agent, method, path, {"Authorization": creds, **headers}, body)
        assert status == 401, (path, headers, answer)
        assert answer["error"]["code"] == "unauthenticated"
        assert answer["error"]["field"] == SECRET_HEADER


async def test_an_open_path_cannot_be_borrowed_to_reach_another_route(
    agent: Agent, plain_registry: RunningRegistry
) -> None:
    def send(path: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", agent.server.port, timeout=30)
        try:
            conn.putrequest("GET", path, skip_accept_encoding=True)
            conn.putheader("Authorization", creds_for(plain_registry))
            conn.endheaders()
            return conn.getresponse().status
        finally:
            conn.close()

    for path in ("/healthcheck/../list", "/metrics/%2e%2e/list", "//list", "/openapi.json/../list"):
        assert await asyncio.to_thread(send, path) in (401, 404), path


async def test_health_metrics_and_document_need_no_secret(agent: Agent) -> None:
    for path in ("/healthcheck", "/metrics", "/openapi.json"):
        async with aiohttp.ClientSession() as http:
            async with http.get(agent.url + path) as resp:
                assert resp.status == 200, path


async def test_with_the_secret_the_request_goes_through(
    agent: Agent, plain_registry: RunningRegistry
) -> None:
    status, answer = await raw(
        agent, "GET", "/list", {"Authorization": creds_for(plain_registry), SECRET_HEADER: SECRET}
    )
    assert status == 200, answer


async def test_auth_disabled_lets_requests_through_without_a_secret(
    make_agent: AgentFactory, plain_registry: RunningRegistry
) -> None:
    agent = await make_agent(CR_AGENT_SECRET="", CR_AGENT_AUTH="disabled")
    status, answer = await raw(agent, "GET", "/list", {"Authorization": creds_for(plain_registry)})
    assert status == 200, answer


# --------------------------------------------------------------------------- callback target


CLIENT = "http://broker-client:8000"


@pytest.mark.parametrize(
    ("configured", "given", "same"),
    [
        (CLIENT, "http://broker-client:8000", True),
        (CLIENT, "http://broker-client:8000/", True),
        (CLIENT, "HTTP://Broker-Client:8000", True),
        ("https://client.example", "https://client.example:443/", True),
        ("https://client.example/broker", "https://client.example/broker/", True),
        (CLIENT, "http://broker-client:8001", False),
        (CLIENT, "https://broker-client:8000", False),
        (CLIENT, "http://broker-client.evil:8000", False),
        (CLIENT, "http://broker-client:8000/other", False),
        ("https://client.example/broker", "https://client.example/", False),
        (CLIENT, "http://user:pw@broker-client:8000", False),
        (CLIENT, "http://broker-client:8000?x=1", False),
        (CLIENT, "http://broker-client:8000#x", False),
        (CLIENT, "ftp://broker-client:8000", False),
    ],
)
def test_same_target_means_scheme_host_port_and_path(
    configured: str, given: str, same: bool
) -> None:
    assert same_target(configured, given) is same


def test_callback_base_falls_back_to_the_setting_and_refuses_others() -> None:
    assert callback_base("http://c:8000", None, allow_request=False) == "http://c:8000"
    assert callback_base("http://c:8000", "http://C:8000/", allow_request=False) == "http://c:8000"
    for given in ("http://10.0.0.5/x", "http://c:8000/x"):
        with pytest.raises(ApiError) as caught:
            callback_base("http://c:8000", given, allow_request=False)
        assert caught.value.status == 400 and caught.value.field == "callbackUrl"
    with pytest.raises(ApiError) as caught:
        callback_base(None, None, allow_request=False)
    assert "BROKER_CLIENT_URL" in caught.value.message
    assert callback_base(None, "http://10.0.0.5/x", allow_request=True) == "http://10.0.0.5/x"
    with pytest.raises(ApiError):  # even when allowed: no user, query or fragment
        callback_base(None, "http://u:p@10.0.0.5/x", allow_request=True)


async def test_a_foreign_callback_url_is_a_400_and_nothing_is_posted_there(
    make_agent: AgentFactory,
    plain_registry: RunningRegistry,
    unique_repo: str,
    receiver: CallbackReceiver,
) -> None:
    attacker = await CallbackReceiver().start()
    try:
        agent = await make_agent(
            BROKER_CLIENT_URL=receiver.url, CR_AGENT_ALLOW_REQUEST_CALLBACK_URL="false"
        )
        await push_image(plain_registry, unique_repo, "1", debian_image(1))
        creds = creds_for(plain_registry)
        body = {"images": [f"{unique_repo}:1"], "callbackUrl": attacker.url + "/x"}
        status, answer = await agent.post("/scan", body, creds)
        assert status == 400 and answer["error"]["field"] == "callbackUrl", answer
        assert "BROKER_CLIENT_URL" in answer["error"]["message"]
        # the configured URL (as written or as the placeholder) and no URL at all all work
        for callback in (receiver.url + "/", "${BROKER_CLIENT_URL}", None):
            body = {"images": [f"{unique_repo}:1"]}
            if callback:
                body["callbackUrl"] = callback
            status, answer = await agent.post("/scan", body, creds)
            assert status == 202, (callback, answer)
        await receiver.wait_for(DONE, 3)
        assert not attacker.received
    finally:
        await attacker.stop()


async def test_without_broker_client_url_scans_are_refused_naming_the_setting(
    make_agent: AgentFactory, plain_registry: RunningRegistry
) -> None:
    agent = await make_agent(CR_AGENT_ALLOW_REQUEST_CALLBACK_URL="false")
    status, answer = await agent.post("/scan", {"images": ["r:1"]}, creds_for(plain_registry))
    assert status == 400 and answer["error"]["field"] == "callbackUrl"
    assert "BROKER_CLIENT_URL" in answer["error"]["message"]


# --------------------------------------------------------------------------- allowed registries


def registry_host(registry: RunningRegistry) -> str:
    return registry.url.split("://", 1)[1]


def test_allowed_registries_setting_is_host_port_entries() -> None:
    settings = load_settings(
        {"CR_AGENT_SECRET": SECRET, "CR_ALLOWED_REGISTRIES": "Harbor.Example:443, 127.0.0.1:5000,"}
    )
    assert settings.allowed_registries == frozenset({"harbor.example", "127.0.0.1:5000"})
    for bad in ("https://harbor.example", "harbor.example/path", "harbor.example:http", "u@h"):
        with pytest.raises(SettingsError) as caught:
            load_settings({"CR_AGENT_SECRET": SECRET, "CR_ALLOWED_REGISTRIES": bad})
        assert str(caught.value).startswith("CR_ALLOWED_REGISTRIES")


async def test_a_registry_not_listed_is_a_403_naming_it(
    make_agent: AgentFactory, plain_registry: RunningRegistry, htpasswd_registry: RunningRegistry
) -> None:
    listed, other = registry_host(plain_registry), registry_host(htpasswd_registry)
    agent = await make_agent(CR_ALLOWED_REGISTRIES=f"registry.example,{listed}")
    status, answer = await agent.get("/list", creds_for(plain_registry))
    assert status == 200, answer
    creds = creds_for(htpasswd_registry)
    for method, path in (("GET", "/list"), ("GET", "/list/some/repo"), ("POST", "/scan")):
        if method == "GET":
            status, answer = await agent.get(path, creds)
        else:
            status, answer = await agent.post(path, {"images": ["some/repo:1"]}, creds)
        assert status == 403, (path, answer)
        error = answer["error"]
        assert error["code"] == "registry-not-allowed" and error["registry"] == other
        assert error["field"] == "registryBase" and "CR_ALLOWED_REGISTRIES" in error["message"]
    status, answer = await agent.get("/validate-credentials", creds)
    assert status == 403 and answer["reason"] == "registry-not-allowed", answer


async def test_an_api_base_not_listed_is_refused_too(
    make_agent: AgentFactory, plain_registry: RunningRegistry
) -> None:
    agent = await make_agent(CR_ALLOWED_REGISTRIES=registry_host(plain_registry))
    creds = creds_for(plain_registry, "harbor-cr", apiBase="http://10.9.9.9:8080")
    status, answer = await agent.get("/list", creds)
    assert status == 403, answer
    assert answer["error"]["field"] == "apiBase" and answer["error"]["registry"] == "10.9.9.9:8080"


# --------------------------------------------------------------------------- echoed fields


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"requestId": "a" * 129}, "requestId"),
        ({"requestId": "id with spaces"}, "requestId"),
        ({"requestId": "http://evil/x"}, "requestId"),
        ({"context": {"bad key": "v"}}, "context"),
        ({"context": {"orgId": "a/b?c"}}, "context"),
        ({"context": {f"k{i}": i for i in range(17)}}, "context"),
        ({"images": ["UPPER/case:1"]}, "images"),
        ({"images": ["repo:1 ; rm"]}, "images"),
    ],
)
async def test_echoed_fields_of_the_wrong_shape_are_a_400(
    agent: Agent, plain_registry: RunningRegistry, extra: dict[str, Any], field: str
) -> None:
    body = {"images": ["repo:1"], "callbackUrl": "http://127.0.0.1:9", **extra}
    status, answer = await agent.post("/scan", body, creds_for(plain_registry))
    assert status == 400, answer
    assert answer["error"]["field"].startswith(field), answer


async def test_echoed_fields_holding_this_requests_secrets_are_refused(
    agent: Agent, htpasswd_registry: RunningRegistry, receiver: CallbackReceiver
) -> None:
    """What ``${CR_PASSWORD}``, ``${CR_CREDENTIALS}`` or the agent's secret substituted into
    an echoed field would look like: refused, and the answer does not repeat the value."""
    creds = creds_for(htpasswd_registry)
    password = htpasswd_registry.password or ""
    assert len(password) >= 8
    cases: list[tuple[dict[str, object], str]] = [
        ({"requestId": password}, "requestId"),
        ({"requestId": f"x-{password}-y"}, "requestId"),
        ({"context": {"orgId": password}}, "context.orgId"),
        ({"requestId": SECRET}, "requestId"),
        ({"callbackUrl": f"{receiver.url}/{creds}"}, "callbackUrl"),
    ]
    for extra, field in cases:
        body = {"images": ["repo:1"], "callbackUrl": receiver.url, **extra}
        status, answer = await agent.post("/scan", body, creds)
        assert status == 400 and answer["error"]["field"] == field, (extra, answer)
        text = json.dumps(answer)
        assert password not in text and SECRET not in text and creds not in text
    await asyncio.sleep(0.2)  # a window in which nothing may arrive
    assert not receiver.received


async def test_callbacks_echo_only_validated_identifiers(
    make_agent: AgentFactory,
    plain_registry: RunningRegistry,
    unique_repo: str,
    receiver: CallbackReceiver,
) -> None:
    agent = await make_agent(
        BROKER_CLIENT_URL=receiver.url, CR_AGENT_ALLOW_REQUEST_CALLBACK_URL="false"
    )
    await push_image(plain_registry, unique_repo, "1", debian_image(1))
    body = {
        "images": [f"{unique_repo}:1"],
        "requestId": "3f1c2a9e-0000-4000-8000-000000000001",
        "context": {"orgId": "org.1", "attempt": 2, "retry": False},
    }
    status, accepted = await agent.post("/scan", body, creds_for(plain_registry))
    assert status == 202, accepted
    [done] = await receiver.wait_for(DONE)
    [result] = receiver.on(RESULT)
    for received in (result, done):
        sent = received.json()
        assert sent["requestId"] == body["requestId"] and sent["context"] == body["context"]
        assert sent["jobId"] == accepted["jobId"]
    # the callback went to the configured URL's own paths, nothing request-chosen in them
    assert [r.path for r in receiver.received] == [RESULT, DONE]
