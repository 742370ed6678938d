"""Bad input gets a 4xx/5xx with a JSON reason naming the field or step, in bounded time."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from deploy.processes import refused_port
from shared.credentials import KNOWN_TYPES, build_credentials_json, encode_credentials
from tests.cr_agent.service.agent import Agent, AgentFactory, creds_for
from tests.support.registry import RunningRegistry


def blob(**obj: object) -> str:
    return encode_credentials(obj)


async def test_missing_credentials_names_the_authorization_header(agent: Agent) -> None:
    status, body = await agent.get("/list")
    assert status == 400
    assert body["error"]["code"] == "credentials-invalid"
    assert body["error"]["field"] == "Authorization"
    assert body["error"]["step"] == "credentials"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("%%% not base64 %%%", "base64"),
        (base64.b64encode(b"not json").decode(), "JSON"),
        (base64.b64encode(b'["a list"]').decode(), "object"),
        (base64.b64encode(b'{"username": "u"}').decode(), "type"),
    ],
)
async def test_undecodable_credentials_say_what_is_wrong(
    agent: Agent, value: str, says: str
) -> None:
    status, body = await agent.get("/list", value)
    assert status == 400
    assert body["error"]["field"] == "Authorization"
    assert says in body["error"]["message"]


async def test_unknown_type_lists_the_known_ones(agent: Agent) -> None:
    status, body = await agent.get("/list", blob(type="floppy-cr", username="u", password="p"))
    assert status == 400
    assert body["error"]["code"] == "unknown-type"
    assert body["error"]["field"] == "type"
    assert set(KNOWN_TYPES) <= set(body["error"]["knownTypes"])
    assert "generic-cr" in body["error"]["message"]


async def test_type_specific_missing_field_is_named(agent: Agent) -> None:
    status, body = await agent.get("/list", blob(type="ecr", extra={"region": "eu-west-1"}))
    assert status == 400 and "roleArn" in body["error"]["message"]
    status, body = await agent.get("/list", blob(type="generic-cr", username="u", password="p"))
    assert status == 400 and "registryBase" in body["error"]["message"]
    status, body = await agent.get(
        "/list", blob(type="gcr", username="bob", password="k", registryBase="gcr.io")
    )
    assert status == 400 and "_json_key" in body["error"]["message"]


async def test_unknown_query_parameters_are_named(
    agent: Agent, plain_registry: RunningRegistry
) -> None:
    status, body = await agent.get("/list?colour=blue&size=9", creds_for(plain_registry))
    assert status == 400
    assert body["error"]["code"] == "invalid-request"
    assert "colour" in body["error"]["message"] and "size" in body["error"]["message"]


async def test_bad_query_value_is_named(agent: Agent, plain_registry: RunningRegistry) -> None:
    status, body = await agent.get("/list-paginated/x?pageSize=0", creds_for(plain_registry))
    assert status == 400 and body["error"]["field"] == "pageSize"


async def test_scan_body_unknown_fields_and_missing_images_are_named(agent: Agent) -> None:
    creds = blob(type="generic-cr", username="u", password="p", registryBase="http://127.0.0.1:1")
    status, body = await agent.post(
        "/scan", {"images": ["a:b"], "imagez": [], "callbackUrl": "http://127.0.0.1:9"}, creds
    )
    assert status == 400 and "imagez" in body["error"]["message"]
    status, body = await agent.post("/scan", {"callbackUrl": "http://127.0.0.1:9"}, creds)
    assert status == 400 and body["error"]["field"] == "images"
    status, body = await agent.post("/scan", {"images": []}, creds)
    assert status == 400 and body["error"]["field"] == "images"
    status, body = await agent.post("/scan", {"images": ["a:b"]}, creds)
    assert status == 400 and body["error"]["field"] == "callbackUrl"
    async with agent.http.post(
        agent.url + "/scan", data=b"{not json", headers={"Authorization": creds}
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["field"] == "body"


async def test_image_that_does_not_exist_is_404(
    agent: Agent, plain_registry: RunningRegistry
) -> None:
    status, body = await agent.get("/image-metadata/nobody/here/latest", creds_for(plain_registry))
    assert status == 404
    assert body["error"]["code"] == "not-found"
    assert body["error"]["step"] == "manifest"
    status, body = await agent.get(
        "/get-state-identifier?image=nobody/here:1", creds_for(plain_registry)
    )
    assert status == 404


async def test_invalid_image_reference_names_the_image(
    agent: Agent, plain_registry: RunningRegistry
) -> None:
    status, body = await agent.get(
        "/get-state-identifier?image=UPPER/Case:1", creds_for(plain_registry)
    )
    assert status == 400
    assert body["error"]["code"] == "invalid-reference"
    assert body["error"]["field"] == "image"


async def test_unreachable_registry_is_named(agent: Agent) -> None:
    dead = f"http://127.0.0.1:{refused_port()}"
    creds = encode_credentials(
        build_credentials_json("generic-cr", base=dead, username="u", password="p")
    )
    status, body = await agent.get("/validate-credentials", creds)
    assert status == 502
    assert body["reason"] == "registry-unreachable"
    assert body["failedStep"] == "authenticate"


async def test_plain_http_is_only_used_when_written(
    agent: Agent, plain_registry: RunningRegistry
) -> None:
    # the registry speaks plain HTTP; without "http://" the agent must insist on TLS
    creds = encode_credentials(
        build_credentials_json("generic-cr", base=plain_registry.host, username="", password="")
    )
    status, body = await agent.get("/list", creds)
    assert status == 502
    assert body["error"]["code"] in ("tls", "registry-unreachable")


@pytest.fixture
async def misbehaving_registry() -> AsyncIterator[str]:
    """/v2/ says 200, /broken/ answers 500, /slow/ never answers."""

    async def v2(request: web.Request) -> web.Response:
        return web.json_response({})

    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"errors": [{"code": "UNKNOWN"}]}, status=500)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/v2/", v2)
    app.router.add_get("/v2/_catalog", broken)
    app.router.add_get("/v2/hang/{tail:.*}", slow)
    app.router.add_route("*", "/v2/broken/{tail:.*}", broken)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    await server.close()


async def test_registry_answering_500_is_a_502_naming_the_step(
    make_agent: AgentFactory, misbehaving_registry: str
) -> None:
    agent = await make_agent(REGISTRY_TIMEOUT=2)
    creds = encode_credentials(
        build_credentials_json("generic-cr", base=misbehaving_registry, username="u", password="p")
    )
    started = time.monotonic()
    status, body = await agent.get("/list", creds)
    assert status == 502
    assert body["error"]["step"] == "catalog"
    status, body = await agent.get("/list/broken/repo", creds)
    assert status == 502 and body["error"]["step"] == "tags"
    assert time.monotonic() - started < 30


async def test_hanging_registry_is_answered_in_bounded_time(
    make_agent: AgentFactory, misbehaving_registry: str
) -> None:
    agent = await make_agent(REGISTRY_TIMEOUT=1, REQUEST_TIMEOUT=6)
    creds = encode_credentials(
        build_credentials_json("generic-cr", base=misbehaving_registry, username="u", password="p")
    )
    started = time.monotonic()
    status, body = await agent.get("/image-metadata/hang/img/latest", creds)
    elapsed = time.monotonic() - started
    assert status in (502, 504), body
    assert body["error"]["code"] in ("registry-unreachable", "timeout")
    assert elapsed < 10


async def test_unknown_route_is_json_404(agent: Agent) -> None:
    status, body = await agent.get("/no/such/thing")
    assert status == 404 and body["error"]["code"] == "no-such-route"


async def test_large_bodies_are_read_whole_and_validated(agent: Agent) -> None:
    creds = blob(type="generic-cr", username="u", password="p", registryBase="http://127.0.0.1:1")
    images = [f"team/repository-with-a-long-name-{i:04d}:tag-{'x' * 150}" for i in range(1001)]
    status, body = await agent.post(
        "/scan", {"images": images, "callbackUrl": "http://127.0.0.1:9"}, creds
    )
    assert status == 400  # parsed whole (about 200 kB), then refused for being 1001 images
    assert body["error"]["field"] == "images"
    async with agent.http.post(
        agent.url + "/scan", data=b"[" + b"1," * 1_500_000 + b"1]", headers={"Authorization": creds}
    ) as resp:
        assert resp.status == 413


async def test_every_answer_carries_a_request_id(agent: Agent) -> None:
    async with agent.http.get(
        agent.url + "/healthcheck", headers={"X-Request-Id": "abc-123"}
    ) as resp:
        assert resp.headers["X-Request-Id"] == "abc-123"
    async with agent.http.get(agent.url + "/list", headers={"X-Request-Id": "bad id; x=1"}) as resp:
        generated = resp.headers["X-Request-Id"]
        assert resp.status == 400 and generated != "bad id; x=1" and len(generated) == 16
