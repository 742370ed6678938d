"""Registry types whose listing goes through a vendor API, against fakes of those APIs.

The fakes (tests/fakes/) follow the vendors' documented shapes; ``apiBase`` in the
credentials points the agent at them. What a registry serves itself (catalog refusals) comes
from the same fake where the vendor couples the two (Harbor, Quay).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.credentials import encode_credentials
from tests.cr_agent.service.agent import Agent
from tests.fakes.digitalocean import fake_digitalocean
from tests.fakes.docker_hub import fake_docker_hub
from tests.fakes.github import fake_github
from tests.fakes.gitlab import fake_gitlab
from tests.fakes.harbor import fake_harbor
from tests.fakes.quay import fake_quay
from tests.fakes.vendor_server import FakeServer

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


@pytest.fixture
async def started() -> AsyncIterator[list[FakeServer]]:
    servers: list[FakeServer] = []
    yield servers
    for server in servers:
        await server.stop()


async def start(started: list[FakeServer], fake: FakeServer) -> FakeServer:
    started.append(await fake.start())
    return fake


def blob(**obj: Any) -> str:
    return encode_credentials(obj)


async def test_github_lists_org_container_packages_across_pages(
    agent: Agent, started: list[FakeServer]
) -> None:
    token = "ghp_" + secrets.token_hex(16)
    packages = {f"acme/app{i}": {D1: ["latest"]} for i in range(130)} | {"someone/own": {D1: ["1"]}}
    fake = await start(started, fake_github(token, "acme", "someone", packages))
    creds = blob(
        type="github-cr",
        username="bot",
        password=token,
        registryBase="ghcr.io",
        apiBase=fake.url,
        organization="acme",
    )
    status, body = await agent.get("/list", creds)
    assert status == 200, body
    assert body["repositories"] == sorted(f"acme/app{i}" for i in range(130))
    assert (
        sum(1 for r in fake.requests if "/orgs/acme/packages" in r) == 2
    )  # 130 packages at per_page=100
    assert all("package_type=container" in r for r in fake.requests if "/packages?" in r)


async def test_github_without_org_lists_the_users_packages(
    agent: Agent, started: list[FakeServer]
) -> None:
    token = "ghp_" + secrets.token_hex(16)
    fake = await start(
        started,
        fake_github(
            token, "acme", "someone", {"someone/tool": {D1: ["v1"]}, "acme/x": {D1: ["1"]}}
        ),
    )
    creds = blob(type="github-cr", username="someone", password=token, apiBase=fake.url)
    status, body = await agent.get("/list", creds)
    assert status == 200 and body["repositories"] == ["someone/tool"]


async def test_github_tags_with_push_times_from_package_versions(
    agent: Agent, started: list[FakeServer]
) -> None:
    token = "ghp_" + secrets.token_hex(16)
    fake = await start(
        started,
        fake_github(token, "acme", "me", {"acme/app": {D1: ["1.0", "stable"], D2: ["2.0"]}}),
    )
    creds = blob(
        type="github-cr", username="bot", password=token, apiBase=fake.url, organization="acme"
    )
    status, body = await agent.get("/list-with-metadata/acme/app", creds)
    assert status == 200, body
    assert [(t["tag"], t["digest"]) for t in body["tags"]] == [
        ("1.0", D1),
        ("2.0", D2),
        ("stable", D1),
    ]
    assert body["tags"][1]["pushedAt"].startswith("2024-03-02")


async def test_github_bad_token_is_credentials_refused(
    agent: Agent, started: list[FakeServer]
) -> None:
    fake = await start(started, fake_github("right", "acme", "me", {}))
    creds = blob(
        type="github-cr",
        username="bot",
        password="wrong-token",
        apiBase=fake.url,
        organization="acme",
    )
    status, body = await agent.get("/list", creds)
    assert status == 401 and body["error"]["code"] == "credentials-refused"


async def test_docker_hub_logs_in_and_pages_through_the_namespace(
    agent: Agent, started: list[FakeServer]
) -> None:
    password = secrets.token_urlsafe(12)
    repos = {f"acme/r{i:03d}": {"latest": D1} for i in range(130)} | {"other/x": {"1": D1}}
    fake = await start(started, fake_docker_hub("acme", password, repos))
    creds = blob(
        type="docker-hub",
        username="acme",
        password=password,
        registryBase="docker.io",
        apiBase=fake.url,
    )
    status, body = await agent.get("/list", creds)
    assert status == 200, body
    assert body["repositories"] == sorted(k for k in repos if k.startswith("acme/"))
    assert any(r.startswith("POST /v2/auth/token") for r in fake.requests)
    assert any(r.startswith("GET /v2/namespaces/acme/repositories") for r in fake.requests)

    status, body = await agent.get("/list-with-metadata/acme/r001", creds)
    assert status == 200, body
    assert body["tags"] == [{"tag": "latest", "digest": D1, "pushedAt": "2024-05-01T12:00:00Z"}]


async def test_docker_hub_falls_back_to_the_deprecated_login(
    agent: Agent, started: list[FakeServer]
) -> None:
    fake = await start(
        started, fake_docker_hub("acme", "pw-1234", {"acme/one": {"1": D1}}, new_auth=False)
    )
    creds = blob(type="docker-hub", username="acme", password="pw-1234", apiBase=fake.url)
    status, body = await agent.get("/list", creds)
    assert status == 200 and body["repositories"] == ["acme/one"]
    assert any(r.startswith("POST /v2/users/login") for r in fake.requests)


async def test_docker_hub_wrong_password_fails_at_authenticate(
    agent: Agent, started: list[FakeServer]
) -> None:
    fake = await start(started, fake_docker_hub("acme", "right", {}))
    creds = blob(type="docker-hub", username="acme", password="wrong", apiBase=fake.url)
    status, body = await agent.get("/list", creds)
    assert status == 401 and body["error"]["step"] == "authenticate"


async def test_gitlab_lists_registry_repositories_of_member_projects(
    agent: Agent, started: list[FakeServer]
) -> None:
    token = "glpat-" + secrets.token_hex(10)
    projects = {
        1: ("acme/web", ["", "worker"]),
        2: ("acme/no-registry", None),
        3: ("acme/api", ["server"]),
    }
    fake = await start(started, fake_gitlab(token, projects, {"acme": [1, 3]}))
    creds = blob(
        type="gitlab-cr",
        username="bot",
        password=token,
        registryBase="registry.example.com",
        apiBase=fake.url,
    )
    status, body = await agent.get("/list", creds)
    assert status == 200, body
    assert body["repositories"] == ["acme/api/server", "acme/web", "acme/web/worker"]

    status, body = await agent.get(
        "/list",
        blob(type="gitlab-cr", username="bot", password=token, apiBase=fake.url, group="acme"),
    )
    assert status == 200 and body["repositories"] == [
        "acme/api/server",
        "acme/web",
        "acme/web/worker",
    ]


async def test_harbor_falls_back_to_the_project_api_when_the_catalog_is_refused(
    agent: Agent, started: list[FakeServer]
) -> None:
    password = secrets.token_urlsafe(10)
    repos = {"library/nginx": {"1.25": D1}, "team/app/api": {"1": D1, "2": D2}}
    fake = await start(started, fake_harbor("robot", password, repos))
    creds = blob(type="harbor-cr", username="robot", password=password, registryBase=fake.url)
    status, body = await agent.get("/list", creds)
    assert status == 200, body
    assert body["repositories"] == ["library/nginx", "team/app/api"]
    assert "GET /v2/_catalog?n=1000" in fake.requests

    status, body = await agent.get("/list-with-metadata/team/app/api", creds)
    assert status == 200, body
    assert [(t["tag"], t["digest"]) for t in body["tags"]] == [("1", D1), ("2", D2)]
    assert all(t["pushedAt"] for t in body["tags"])


async def test_digitalocean_lists_through_the_api_with_page_tokens(
    agent: Agent, started: list[FakeServer]
) -> None:
    token = "dop_v1_" + secrets.token_hex(16)
    repos = {f"svc{i:03d}": {"latest": D1} for i in range(150)}
    fake = await start(started, fake_digitalocean(token, "acme-reg", repos))
    creds = blob(
        type="digitalocean-cr",
        username=token,
        password=token,
        registryBase="registry.digitalocean.com",
        apiBase=fake.url,
    )
    status, body = await agent.get("/list", creds)
    assert status == 200, body
    assert body["repositories"] == [f"acme-reg/svc{i:03d}" for i in range(150)]
    assert sum(1 for r in fake.requests if "repositoriesV2" in r) == 2

    status, body = await agent.get("/list-with-metadata/acme-reg/svc007", creds)
    assert status == 200 and body["tags"][0]["digest"] == D1


async def test_quay_falls_back_to_the_api_when_the_catalog_is_missing(
    agent: Agent, started: list[FakeServer]
) -> None:
    token = secrets.token_urlsafe(20)
    tags = {"acme/a": {f"v{i:03d}": D1 if i % 2 else D2 for i in range(120)}}
    fake = await start(started, fake_quay(token, ["acme/a", "acme/b", "acme/c", "other/z"], tags))
    creds = blob(type="quay-cr", username="acme+robot", password=token, registryBase=fake.url)
    status, body = await agent.get("/list", creds)
    assert status == 200, body
    assert body["repositories"] == ["acme/a", "acme/b", "acme/c"]

    status, body = await agent.get("/list-with-metadata/acme/a", creds)
    assert status == 200, body
    assert body["count"] == 120  # two pages of 100
    assert body["tags"][0] == {"tag": "v000", "digest": D2, "pushedAt": "2024-06-01T10:00:00Z"}


async def test_artifact_registry_lists_through_its_api_with_a_token_from_the_key(
    agent: Agent, started: list[FakeServer]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.fakes.google import fake_google

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = "scanner@my-project.iam.gserviceaccount.com"
    images = {"app": {D1: ["1.0", "latest"], D2: ["0.9"]}, "tools/cli": {D2: ["v2"]}}
    fake = await start(
        started,
        fake_google(private.public_key(), email, "europe-west1", "my-project", "my-repo", images),
    )
    key = {
        "type": "service_account",
        "project_id": "my-project",
        "private_key_id": "abc123",
        "private_key": private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "client_email": email,
        "token_uri": f"{fake.url}/token",
    }
    creds = blob(
        type="google-artifact-cr",
        username="_json_key",
        password=json.dumps(key),
        registryBase=f"{fake.url}/my-project/my-repo",
        apiBase=fake.url,
        location="europe-west1",
    )
    status, body = await agent.get("/list", creds)
    assert status == 200, body
    assert body["repositories"] == ["my-project/my-repo/app", "my-project/my-repo/tools/cli"]

    status, body = await agent.get("/list-with-metadata/my-project/my-repo/app", creds)
    assert status == 200, body
    assert [(t["tag"], t["digest"]) for t in body["tags"]] == [
        ("0.9", D2),
        ("1.0", D1),
        ("latest", D1),
    ]
    assert body["tags"][1]["pushedAt"].startswith("2024-08-01T10:00:00")
    assert sum(1 for r in fake.requests if r.startswith("POST /token")) == 1  # token cached
