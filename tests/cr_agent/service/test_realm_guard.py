"""The token-realm guard applies one rule to addresses and to names after resolution: a
registry that is not on this host cannot send the registry password to ``localhost``,
``127.0.0.2`` or a link-local metadata address by naming it as its token realm."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cr_agent.registry.auth import realm_refusal
from shared.credentials import build_credentials_json, encode_credentials
from tests.cr_agent.service.agent import AgentFactory
from tests.support.hostile_registry import HostileRegistry

PASSWORD = "realm-guard-secret"


@pytest.mark.parametrize(
    ("realm", "realm_addresses", "registry", "registry_addresses", "refused"),
    [
        # a registry elsewhere: loopback and link-local realms are refused, named or not
        ("http://localhost:1/t", ["127.0.0.1", "::1"], "http://reg.example", ["203.0.113.9"], True),
        ("http://127.0.0.2:1/t", [], "http://reg.example", ["203.0.113.9"], True),
        ("http://meta.example/t", ["169.254.169.254"], "http://reg.example", ["203.0.113.9"], True),
        ("http://m.example/t", ["::ffff:127.0.0.1"], "http://reg.example", ["203.0.113.9"], True),
        ("http://0.0.0.0:1/t", [], "http://reg.example", ["203.0.113.9"], True),
        # ordinary and private realms are the registry's choice, as in Docker
        ("https://auth.example/t", ["203.0.113.7"], "https://reg.example", ["203.0.113.9"], False),
        ("http://auth.lan/t", ["10.1.2.3"], "http://reg.lan", ["10.1.2.4"], False),
        # a registry on this host may keep its realm on this host, under any loopback name
        ("http://localhost:1/t", ["127.0.0.1"], "http://127.0.0.1:5000", [], False),
        ("http://127.0.0.2:1/t", [], "http://127.0.0.1:5000", [], False),
        ("http://localhost:1/t", ["::1"], "http://reg.local", ["127.0.0.1"], False),
    ],
)
def test_one_rule_for_addresses_and_resolved_names(
    realm: str,
    realm_addresses: list[str],
    registry: str,
    registry_addresses: list[str],
    refused: bool,
) -> None:
    why = realm_refusal(
        realm, registry, realm_addresses=realm_addresses, registry_addresses=registry_addresses
    )
    assert (why is not None) == refused, why
    if refused:
        assert "refusing to send credentials" in str(why)


def _non_loopback_address() -> str | None:
    """This host's address on its default route (a UDP connect sends no packet)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("203.0.113.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.fixture
async def realm_server() -> AsyncIterator[tuple[TestServer, list[str | None]]]:
    seen: list[str | None] = []

    async def token(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"token": "t", "expires_in": 300})

    app = web.Application()
    app.router.add_get("/token", token)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server, seen
    await server.close()


@pytest.mark.parametrize("realm_host", ["localhost", "127.0.0.2"])
async def test_a_registry_elsewhere_cannot_aim_the_password_at_a_loopback_realm(
    make_agent: AgentFactory,
    realm_server: tuple[TestServer, list[str | None]],
    realm_host: str,
) -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback address on this host to put the registry on")
    server, seen = realm_server
    realm = f"http://{realm_host}:{server.port}/token"
    registry = await HostileRegistry(host=address, bearer_realm=realm).start()
    try:
        agent = await make_agent()
        blob = encode_credentials(
            build_credentials_json(
                "generic-cr", base=registry.url, username="scanner", password=PASSWORD
            )
        )
        status, body = await agent.get("/list/some/repo", blob)
    finally:
        await registry.stop()
    assert status == 401, body
    assert "local or link-local address" in body["error"]["message"]
    assert realm_host in body["error"]["message"]
    assert PASSWORD not in str(body)
    assert seen == []  # the realm was never asked, so it never saw the password
