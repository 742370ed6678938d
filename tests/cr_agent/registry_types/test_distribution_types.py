"""Types that use the plain distribution API (acr, nexus-cr, harbor-cr/quay-cr as admin,
artifactory-cr with a repository path, gcr/google-artifact-cr with ``_json_key``) against
Debian's docker-registry."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from shared.credentials import build_credentials_json, encode_credentials
from tests.cr_agent.service.agent import AgentFactory
from tests.cr_agent.service.images import debian_image, push_image
from tests.fakes.artifactory_path import artifactory_path_proxy
from tests.fakes.callback_receiver import CallbackReceiver
from tests.support.registry import RunningRegistry, require_registry, running_registry

pytestmark = pytest.mark.registry


@pytest.mark.parametrize(
    "cr_type", ["acr", "nexus-cr", "harbor-cr", "quay-cr", "artifactory-cr", "generic-cr"]
)
async def test_catalog_types_list_and_describe(
    make_agent: AgentFactory, htpasswd_registry: RunningRegistry, unique_repo: str, cr_type: str
) -> None:
    digest = await push_image(htpasswd_registry, unique_repo, "7", debian_image(1))
    creds = encode_credentials(
        build_credentials_json(
            cr_type,
            base=htpasswd_registry.url,
            username="scanner",
            password=htpasswd_registry.password,
        )
    )
    agent = await make_agent()
    status, body = await agent.get("/list", creds)
    assert status == 200, body
    assert unique_repo in body["repositories"]
    status, body = await agent.get(f"/list-with-metadata/{unique_repo}", creds)
    assert status == 200 and body["tags"] == [{"tag": "7", "digest": digest}]


@pytest.fixture(scope="module")
def google_registry() -> Iterator[RunningRegistry]:
    """A registry that, like gcr.io, takes ``_json_key`` and a service-account key."""
    require_registry()
    key = json.dumps(
        {
            "type": "service_account",
            "project_id": "p",
            "private_key_id": "k1",
            "client_email": "sa@p.iam.gserviceaccount.com",
        }
    )
    with running_registry("htpasswd", username="_json_key", password=key) as registry:
        yield registry


@pytest.mark.parametrize("cr_type", ["gcr", "google-artifact-cr"])
async def test_google_types_authenticate_with_the_json_key(
    make_agent: AgentFactory, google_registry: RunningRegistry, unique_repo: str, cr_type: str
) -> None:
    await push_image(google_registry, unique_repo, "1", debian_image(1))
    creds = encode_credentials(
        build_credentials_json(
            cr_type,
            base=google_registry.url,
            username="_json_key",
            password=google_registry.password,
        )
    )
    agent = await make_agent()
    status, body = await agent.get("/validate-credentials", creds)
    assert status == 200, body
    status, body = await agent.get(f"/list/{unique_repo}", creds)
    assert status == 200 and body["tags"] == ["1"]


async def test_artifactory_repository_path_base(
    make_agent: AgentFactory, htpasswd_registry: RunningRegistry, unique_repo: str
) -> None:
    for tag in ("a", "b", "c"):
        await push_image(htpasswd_registry, unique_repo, tag, debian_image(2, marker=tag))
    proxy = await artifactory_path_proxy(htpasswd_registry.url, "docker-local").start()
    receiver = await CallbackReceiver().start()
    try:
        base = f"{proxy.url}/artifactory/api/docker/docker-local"
        creds = encode_credentials(
            build_credentials_json(
                "artifactory-cr", base=base, username="scanner", password=htpasswd_registry.password
            )
        )
        agent = await make_agent()
        status, body = await agent.get("/list", creds)
        assert status == 200 and unique_repo in body["repositories"], body
        status, body = await agent.get(f"/list/{unique_repo}", creds)
        assert status == 200 and body["tags"] == ["a", "b", "c"]
        assert all(
            r.split(" ")[1].startswith("/artifactory/api/docker/docker-local/v2/")
            for r in proxy.requests
        )

        status, _ = await agent.post(
            "/scan", {"images": [f"{unique_repo}:b"], "callbackUrl": receiver.url}, creds
        )
        assert status == 202
        await receiver.wait_for("/api/v2/import/done")
        result = receiver.on("/api/v2/import/result")[0].json()
        assert result["status"] == "success" and result["packageCount"] == 2
    finally:
        await receiver.stop()
        await proxy.stop()


async def test_gcr_path_in_registry_base_scopes_the_listing(
    make_agent: AgentFactory, google_registry: RunningRegistry, unique_repo: str
) -> None:
    await push_image(google_registry, unique_repo, "1", debian_image(1))
    await push_image(google_registry, "elsewhere/img", "1", debian_image(1))
    creds = encode_credentials(
        build_credentials_json(
            "gcr",
            base=f"{google_registry.url}/{unique_repo.split('/')[0]}",
            username="_json_key",
            password=google_registry.password,
        )
    )
    agent = await make_agent()
    status, body = await agent.get("/list", creds)
    assert status == 200, body
    assert unique_repo in body["repositories"]
    assert "elsewhere/img" not in body["repositories"]
    # the path is a scope, not a URL prefix: pulls still address /v2/<project>/<image>
    status, body = await agent.get(f"/list/{unique_repo}", creds)
    assert status == 200 and body["tags"] == ["1"]
