"""/validate-credentials names the failing step: TLS, listing not permitted, credentials."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from shared.credentials import encode_credentials
from tests.cr_agent.service.agent import AgentFactory
from tests.cr_agent.service.images import debian_image
from tests.fakes.harbor import fake_harbor
from tests.support.images import push
from tests.support.registry import RunningRegistry, require_registry, running_registry

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def tls_registry() -> Iterator[RunningRegistry]:
    require_registry()
    with running_registry("htpasswd", tls=True) as registry:
        yield registry


def blob(registry: RunningRegistry, password: str | None = None) -> str:
    return encode_credentials(
        {
            "type": "generic-cr",
            "username": registry.username,
            "password": password or registry.password,
            "registryBase": registry.url,
        }
    )


async def test_untrusted_certificate_fails_at_tls_then_ca_cert_fixes_it(
    make_agent: AgentFactory, tls_registry: RunningRegistry, unique_repo: str
) -> None:
    await asyncio.to_thread(
        push,
        tls_registry.url,
        unique_repo,
        debian_image(1),
        tag="1",
        username=tls_registry.username,
        password=tls_registry.password,
        ca_file=tls_registry.ca_file,
    )
    untrusting = await make_agent()
    status, body = await untrusting.get("/validate-credentials", blob(tls_registry))
    assert status == 502, body
    assert body["reason"] == "tls" and body["failedStep"] == "authenticate"

    trusting = await make_agent(CA_CERT=tls_registry.ca_file)
    status, body = await trusting.get("/validate-credentials", blob(tls_registry))
    assert status == 200, body
    assert body["ok"] is True
    status, body = await trusting.get(f"/list/{unique_repo}", blob(tls_registry))
    assert status == 200 and body["tags"] == ["1"]

    status, body = await trusting.get("/validate-credentials", blob(tls_registry, "wrong-password"))
    assert status == 401 and body["reason"] == "credentials-refused"


async def test_listing_not_permitted_is_its_own_reason(make_agent: AgentFactory) -> None:
    # a Harbor whose catalog refuses non-admins, addressed as a plain OCI registry: there is
    # no project-API fallback for generic-cr, so listing is simply not permitted
    fake = await fake_harbor("robot", "pw-123456", {"p/r": {"1": "sha256:" + "a" * 64}}).start()
    try:
        agent = await make_agent()
        creds = encode_credentials(
            {
                "type": "generic-cr",
                "username": "robot",
                "password": "pw-123456",
                "registryBase": fake.url,
            }
        )
        status, body = await agent.get("/validate-credentials", creds)
        assert status == 403, body
        assert body["failedStep"] == "list"
        assert body["reason"] == "listing-not-permitted"
        assert [s["ok"] for s in body["steps"]] == [True, True, False]

        creds = encode_credentials(
            {
                "type": "harbor-cr",
                "username": "robot",
                "password": "pw-123456",
                "registryBase": fake.url,
            }
        )
        status, body = await agent.get("/validate-credentials", creds)
        assert status == 200 and body["ok"] is True
    finally:
        await fake.stop()


async def test_bad_blob_fails_at_the_credentials_step(make_agent: AgentFactory) -> None:
    agent = await make_agent()
    status, body = await agent.get("/validate-credentials", "bm90IGpzb24=")
    assert status == 400
    assert body["failedStep"] == "credentials" and body["reason"] == "credentials-invalid"
