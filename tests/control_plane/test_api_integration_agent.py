"""``POST .../integrations/{id}/list_images`` and ``.../refresh_status`` through the API (answers
checked against the OpenAPI document), on SQLite and PostgreSQL, with a real agent in front of
Debian's docker-registry with password auth: the console's two buttons, as API calls.

Bad input: no token, an unknown or malformed id, another org's integration, an inactive
integration, a wrong password, an API served without an agent. No answer holds the registry
password or the agent's secret.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from control_plane.api import create_api_app
from control_plane.db import Database
from control_plane.encryption import SecretBox
from control_plane.integrations.registry_agent import RegistryAgent
from control_plane.server_settings import load_server_settings
from deploy import stack as st
from tests.control_plane import factories
from tests.control_plane.api_client import ApiClient
from tests.support.images import Layer, build_image, os_release, push
from tests.support.registry import RunningRegistry, require_registry, running_registry

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]

USER = f"lister-{secrets.token_hex(3)}"
PASSWORD = f"list-Pw-{secrets.token_hex(8)}"
IMAGES = [("alpha", "1"), ("alpha", "2"), ("team/beta", "latest")]


@dataclass
class Registry:
    running: RunningRegistry
    agent: st.Service

    @property
    def agent_secret(self) -> str:
        return self.agent.env["CR_AGENT_SECRET"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    require_registry()
    workdir = tmp_path_factory.mktemp("list-images")
    with running_registry("htpasswd", username=USER, password=PASSWORD) as running:
        for repository, tag in IMAGES:
            image = build_image(
                [Layer({"etc/os-release": os_release("alpine", "3.20.0"), "etc/tag": tag.encode()})]
            )
            push(running.url, repository, image, tag=tag, username=USER, password=PASSWORD)
        agent = st.start_agent(workdir / "agent")
        try:
            yield Registry(running, agent)
        finally:
            agent.stop()


@pytest.fixture
async def api_with_agent(
    db: Database, box: SecretBox, registry: Registry
) -> AsyncIterator[ApiClient]:
    settings = load_server_settings(
        {"CR_AGENT_URL": registry.agent.url, "CR_AGENT_SECRET": registry.agent_secret}
    )
    agent = RegistryAgent(settings, box, None)
    server = TestServer(create_api_app(db, box, agent=agent))
    await server.start_server()
    try:
        async with ClientSession() as http:
            yield ApiClient(http, str(server.make_url("")).rstrip("/"), db)
    finally:
        await server.close()
        await agent.close()


def _integration(registry: Registry, password: str) -> dict[str, Any]:
    return {
        "data": {
            "type": "integration",
            "attributes": {
                "integration_type": "generic-cr",
                "profile_name": "lab registry",
                "has_broker": False,
                "credentials": {
                    "username": USER,
                    "password": password,
                    "registry_base": registry.running.url,
                },
            },
        }
    }


async def test_list_images_and_refresh_status_through_the_api(
    api_with_agent: ApiClient, box: SecretBox, registry: Registry
) -> None:
    api = api_with_agent
    async with api.db.sessions() as session, session.begin():
        mine = await factories.account(session)
        other = await factories.account(session)
        theirs = await factories.integration(session, box, other.org)
    api.token = mine.token
    org = str(mine.org.id)
    made = await api.call(
        "POST", f"/rest/orgs/{org}/integrations", body=_integration(registry, PASSWORD)
    )
    assert made.status == 201, made.json
    base = f"/rest/orgs/{org}/integrations/{made.json['data']['id']}"

    status = await api.call("POST", f"{base}/refresh_status")
    assert status.status == 200, status.json
    attributes = status.json["data"]["attributes"]
    assert attributes["ok"] is True and registry.running.host in attributes["message"]
    assert attributes["checked_at"]

    listed = await api.call("POST", f"{base}/list_images")
    assert listed.status == 200, listed.json
    assert listed.json["data"]["type"] == "integration_images_list"
    attributes = listed.json["data"]["attributes"]
    assert (attributes["listed"], attributes["added"]) == (len(IMAGES), len(IMAGES))
    projects = await api.call("GET", f"/rest/orgs/{org}/projects")
    names = {p["attributes"]["name"] for p in projects.json["data"]}
    assert names == {f"{r}:{t}" for r, t in IMAGES}
    again = await api.call("POST", f"{base}/list_images")
    assert (
        again.json["data"]["attributes"]["listed"],
        again.json["data"]["attributes"]["added"],
    ) == (
        len(IMAGES),
        0,
    )

    # a wrong password: the check answers why, naming the registry, not the password
    wrong = "wrong-" + secrets.token_hex(6)
    bad = await api.call(
        "POST", f"/rest/orgs/{org}/integrations", body=_integration(registry, wrong)
    )
    failing = await api.call(
        "POST", f"/rest/orgs/{org}/integrations/{bad.json['data']['id']}/refresh_status"
    )
    assert failing.status == 200 and failing.json["data"]["attributes"]["ok"] is False
    assert "credentials" in failing.json["data"]["attributes"]["message"], failing.json
    assert wrong not in failing.body.decode()

    # refused: no token, unknown and malformed ids, another org's integration, inactive
    for action in ("list_images", "refresh_status"):
        api.token = None
        anonymous = await api.call("POST", f"{base}/{action}")
        assert anonymous.status == 401, anonymous.json
        api.token = mine.token
        unknown = await api.call("POST", f"/rest/orgs/{org}/integrations/{uuid.uuid4()}/{action}")
        assert unknown.status == 404 and "integration" in unknown.error()["detail"]
        malformed = await api.call("POST", f"/rest/orgs/{org}/integrations/not-an-id/{action}")
        assert malformed.error()["source"] == {"parameter": "integration_id"}
        foreign = await api.call("POST", f"/rest/orgs/{org}/integrations/{theirs.id}/{action}")
        assert foreign.status == 404, foreign.json
        foreign_org = await api.call(
            "POST", f"/rest/orgs/{other.org.id}/integrations/{theirs.id}/{action}"
        )
        assert foreign_org.status == 404, foreign_org.json
    patch = {
        "data": {
            "type": "integration",
            "id": made.json["data"]["id"],
            "attributes": {"is_active": False},
        }
    }
    assert (await api.call("PATCH", base, body=patch)).status == 200
    inactive = await api.call("POST", f"{base}/list_images")
    assert inactive.status == 400
    assert "lab registry is inactive" in inactive.error()["detail"]

    for answer in api.seen:
        text = answer.body.decode()
        assert PASSWORD not in text and wrong not in text and registry.agent_secret not in text


async def test_without_an_agent_the_answer_says_so(api: ApiClient, box: SecretBox) -> None:
    async with api.db.sessions() as session, session.begin():
        acct = await factories.account(session)
        integration = await factories.integration(session, box, acct.org, brokered=False)
    api.token = acct.token
    path = f"/rest/orgs/{acct.org.id}/integrations/{integration.id}/refresh_status"
    answer = await api.call("POST", path)
    assert answer.status == 502
    assert "without an agent" in answer.error()["detail"]
    assert "s3cret-registry-pass" not in answer.body.decode()
