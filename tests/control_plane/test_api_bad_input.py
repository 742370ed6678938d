"""Bad input gets a JSON:API error naming what is wrong, and nothing is stored."""

from __future__ import annotations

import io
import uuid

import pytest
from sqlalchemy import func, select

from control_plane.encryption import SecretBox
from control_plane.models import Integration, Project
from shared.logging import configure_logging
from tests.control_plane import factories
from tests.control_plane.api_client import ApiClient


async def _two_orgs(
    api: ApiClient, box: SecretBox
) -> tuple[factories.Account, factories.Account, Project]:
    async with api.db.sessions() as session, session.begin():
        mine = await factories.account(session)
        theirs = await factories.account(session)
        hub = await factories.integration(session, box, theirs.org)
        project = await factories.scanned_project(session, theirs.org, hub, "their/app")
    api.token = mine.token
    return mine, theirs, project


async def test_a_wrong_or_missing_token_is_401(api: ApiClient, box: SecretBox) -> None:
    mine, _, _ = await _two_orgs(api, box)
    for token_header in (
        {"Authorization": "token not-a-real-token"},
        {"Authorization": "Basic abc"},
    ):
        api.token = None
        answer = await api.get(f"/rest/orgs/{mine.org.id}/projects", headers=token_header)
        assert answer.status == 401
        assert "not-a-real-token" not in answer.body.decode()
        assert answer.error()["status"] == "401"
    api.token = None
    missing = await api.get("/rest/orgs")
    assert missing.status == 401
    assert "Authorization" in missing.error()["detail"]
    v1 = await api.get("/v1/orgs", token="wrong-token-value")
    assert v1.status == 401 and v1.json["code"] == 401


async def test_another_orgs_ids_answer_404_like_unknown_ones(
    api: ApiClient, box: SecretBox
) -> None:
    mine, theirs, project = await _two_orgs(api, box)
    paths = [
        f"/rest/orgs/{theirs.org.id}",
        f"/rest/orgs/{theirs.org.id}/projects",
        f"/rest/orgs/{theirs.org.id}/projects/{project.id}",
        f"/rest/orgs/{mine.org.id}/projects/{project.id}",
        f"/rest/orgs/{mine.org.id}/targets/{project.target_id}",
        f"/rest/orgs/{theirs.org.id}/integrations",
        f"/rest/orgs/{theirs.org.id}/users/{theirs.user.id}",
        f"/rest/orgs/{mine.org.id}/users/{theirs.user.id}",
        f"/rest/orgs/{uuid.uuid4()}/projects",
    ]
    for path in paths:
        answer = await api.get(path)
        assert answer.status == 404, path
        assert answer.error()["status"] == "404"
    deleted = await api.call("DELETE", f"/rest/orgs/{mine.org.id}/projects/{project.id}")
    assert deleted.status == 404
    async with api.db.sessions() as session:
        still = await session.get(Project, project.id)
        assert still is not None and still.deleted_at is None
    orgs = await api.get("/rest/orgs?limit=100")
    assert [o["id"] for o in orgs.json["data"]] == [str(mine.org.id)]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("version=2024-13-45", "version"),
        ("version=yesterday", "version"),
        ("version=2019-01-01", "version"),
        ("version=2024-05-31~nightly", "version"),
        ("version=2024-05-31&version=2023-06-19", "version"),
        ("version=2024-05-31&limit=7", "limit"),
        ("version=2024-05-31&limit=110", "limit"),
        ("version=2024-05-31&limit=ten", "limit"),
        ("version=2024-05-31&colour=red", "colour"),
        ("version=2024-05-31&starting_after=abc", "starting_after"),
        ("version=2024-05-31&ids=not-a-uuid", "ids"),
        ("version=2024-05-31&tags=novalue", "tags"),
        ("version=2024-05-31&expand=owner", "expand"),
        ("version=2024-05-31&meta.latest_issue_counts=maybe", "meta.latest_issue_counts"),
        ("version=2024-05-31&lifecycle=forever", "lifecycle"),
    ],
)
async def test_bad_query_parameters_are_named(
    api: ApiClient, box: SecretBox, query: str, parameter: str
) -> None:
    mine, _, _ = await _two_orgs(api, box)
    answer = await api.get(f"/rest/orgs/{mine.org.id}/projects?{query}", version=None)
    assert answer.status == 400
    error = answer.error()
    assert error["source"] == {"parameter": parameter}
    assert parameter in error["detail"]


async def test_missing_version_is_named(api: ApiClient, box: SecretBox) -> None:
    mine, _, _ = await _two_orgs(api, box)
    answer = await api.get(f"/rest/orgs/{mine.org.id}/projects", version=None)
    assert answer.status == 400
    assert answer.error()["source"] == {"parameter": "version"}


async def test_a_repeated_identical_parameter_is_tolerated(api: ApiClient, box: SecretBox) -> None:
    mine, _, _ = await _two_orgs(api, box)
    answer = await api.get(
        f"/rest/orgs/{mine.org.id}/projects?version=2024-05-31&version=2024-05-31&limit=100&limit=100"
    )
    assert answer.status == 200
    assert answer.headers["snyk-version-requested"] == "2024-05-31"


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "pointer"),
    [
        (b"{not json", "application/vnd.api+json", 400, ""),
        (b"[1, 2]", "application/vnd.api+json", 400, ""),
        (b'{"meta": {}}', "application/vnd.api+json", 400, "/data"),
        (
            b'{"data": {"type": "project", "attributes": {}}}',
            "application/vnd.api+json",
            400,
            "/data/type",
        ),
        (
            b'{"data": {"type": "integration", "attributes": []}}',
            "application/vnd.api+json",
            400,
            "/data/attributes",
        ),
        (
            b'{"data": {"type": "integration", "attributes": {"profile_name": "x"}}}',
            "application/vnd.api+json",
            400,
            "/data/attributes/integration_type",
        ),
        (
            b'{"data": {"type": "integration", "attributes": {"integration_type": "nope"}}}',
            "application/vnd.api+json",
            400,
            "/data/attributes/integration_type",
        ),
        (
            b'{"data": {"type": "integration", "attributes": {"integration_type": "ecr", "colour": 1}}}',
            "application/vnd.api+json",
            400,
            "/data/attributes/colour",
        ),
        (
            b'{"data": {"type": "integration", "attributes": {"integration_type": "harbor-cr",'
            b' "has_broker": false, "credentials": {"username": "u", "registry_base": "https://h"}}}}',
            "application/vnd.api+json",
            400,
            "/data/attributes/credentials/password",
        ),
        (
            b'{"data": {"type": "integration", "attributes": {"integration_type": "ecr",'
            b' "has_broker": "yes"}}}',
            "application/vnd.api+json",
            400,
            "/data/attributes/has_broker",
        ),
        (
            b'{"data": {"type": "integration", "attributes": {"integration_type": "ecr",'
            b' "has_broker": true, "broker_token": "a/b"}}}',
            "application/vnd.api+json",
            400,
            "/data/attributes/broker_token",
        ),
        (b'{"data": {"type": "integration"}}', "text/plain", 415, None),
    ],
)
async def test_malformed_integration_bodies_are_refused_and_nothing_is_stored(
    api: ApiClient, box: SecretBox, raw: bytes, content_type: str, status: int, pointer: str | None
) -> None:
    mine, _, _ = await _two_orgs(api, box)
    answer = await api.call(
        "POST", f"/rest/orgs/{mine.org.id}/integrations", raw=raw, content_type=content_type
    )
    assert answer.status == status
    error = answer.error()
    if pointer is not None:
        assert error["source"] == {"pointer": pointer}
    async with api.db.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Integration).where(Integration.org_id == mine.org.id)
        )
    assert count == 0


async def test_malformed_project_patches_change_nothing(api: ApiClient, box: SecretBox) -> None:
    async with api.db.sessions() as session, session.begin():
        acct = await factories.account(session)
        hub = await factories.integration(session, box, acct.org)
        project = await factories.scanned_project(
            session, acct.org, hub, "team/web", tags=[("team", "payments")]
        )
    api.token = acct.token
    path = f"/rest/orgs/{acct.org.id}/projects/{project.id}"
    cases = [
        (
            {"data": {"type": "project", "attributes": {"tags": [{"key": "a"}]}}},
            "/data/attributes/tags/0",
        ),
        (
            {
                "data": {
                    "type": "project",
                    "attributes": {"tags": [{"key": "bad key!", "value": "v"}]},
                }
            },
            "/data/attributes/tags/0/key",
        ),
        (
            {"data": {"type": "project", "attributes": {"environment": ["moon"]}}},
            "/data/attributes/environment/0",
        ),
        ({"data": {"type": "project", "id": str(uuid.uuid4()), "attributes": {}}}, "/data/id"),
        (
            {"data": {"type": "project", "attributes": {"test_frequency": "hourly"}}},
            "/data/attributes/test_frequency",
        ),
        (
            {
                "data": {
                    "type": "project",
                    "relationships": {"owner": {"data": {"type": "user", "id": "x"}}},
                }
            },
            "/data/relationships/owner/data/id",
        ),
    ]
    for body, pointer in cases:
        answer = await api.call("PATCH", path, body=body)
        assert answer.status == 400, body
        assert answer.error()["source"] == {"pointer": pointer}
    # a valid patch combined with a bad member is refused whole: the tags stay as they were
    mixed = {
        "data": {
            "type": "project",
            "attributes": {"tags": [{"key": "team", "value": "web"}], "lifecycle": ["x"]},
        }
    }
    assert (await api.call("PATCH", path, body=mixed)).status == 400
    answer = await api.get(path)
    assert answer.json["data"]["attributes"]["tags"] == [{"key": "team", "value": "payments"}]
    assert answer.json["data"]["attributes"]["lifecycle"] == []


async def test_unknown_routes_and_methods_answer_json_api_errors(
    api: ApiClient, box: SecretBox
) -> None:
    mine, _, _ = await _two_orgs(api, box)
    missing = await api.get(f"/rest/orgs/{mine.org.id}/nothing-here")
    assert missing.status == 404 and missing.error()["status"] == "404"
    wrong = await api.call("PUT", f"/rest/orgs/{mine.org.id}/projects")
    assert wrong.status == 405 and wrong.error()["status"] == "405"
    # Port's Ocean asks this per project when configured to; a 404 becomes an empty list there
    issues = await api.call(
        "POST", f"/v1/org/{mine.org.id}/project/{uuid.uuid4()}/aggregated-issues", body={}
    )
    assert issues.status == 404 and issues.json["code"] == 404
    bad_id = await api.get("/rest/orgs/not-a-uuid/projects")
    assert bad_id.status == 400 and bad_id.error()["source"] == {"parameter": "org_id"}


async def test_no_secret_in_any_answer_or_log_line(api: ApiClient, box: SecretBox) -> None:
    stream = io.StringIO()
    configure_logging("debug", service="control-plane", stream=stream)
    async with api.db.sessions() as session, session.begin():
        acct = await factories.account(session)
    api.token = acct.token
    org = f"/rest/orgs/{acct.org.id}"
    password = "registry-Pa55word-xyz"
    broker_token = "brokertok-0123456789abcdef"
    direct = await api.call(
        "POST",
        f"{org}/integrations",
        body={
            "data": {
                "type": "integration",
                "attributes": {
                    "integration_type": "harbor-cr",
                    "profile_name": "harbor",
                    "has_broker": False,
                    "credentials": {
                        "username": "robot",
                        "password": password,
                        "registry_base": "https://harbor.example.test",
                    },
                },
            }
        },
    )
    assert direct.status == 201
    brokered = await api.call(
        "POST",
        f"{org}/integrations",
        body={
            "data": {
                "type": "integration",
                "attributes": {
                    "integration_type": "docker-hub",
                    "has_broker": True,
                    "broker_token": broker_token,
                },
            }
        },
    )
    assert brokered.status == 201
    # the broker token is shown once, in the creation answer
    assert brokered.json["data"]["attributes"]["broker_token"] == broker_token
    generated = await api.call(
        "POST",
        f"{org}/integrations",
        body={
            "data": {
                "type": "integration",
                "attributes": {"integration_type": "ecr", "has_broker": True},
            }
        },
    )
    generated_token = generated.json["data"]["attributes"]["broker_token"]
    assert len(generated_token) >= 32
    direct_id = direct.json["data"]["id"]
    reads = [
        await api.get(f"{org}/integrations?limit=100"),
        await api.get(f"{org}/integrations/{direct_id}"),
        await api.get(f"{org}/integrations/{brokered.json['data']['id']}"),
        await api.call(
            "PATCH",
            f"{org}/integrations/{direct_id}",
            body={
                "data": {
                    "type": "integration",
                    "attributes": {
                        "credentials": {
                            "username": "robot",
                            "password": password + "2",
                            "registry_base": "https://harbor.example.test",
                        }
                    },
                }
            },
        ),
        await api.get("/v1/orgs"),
        await api.get("/rest/orgs"),
        await api.get(f"{org}/integrations", token="bad-" + acct.token),
    ]
    assert [r.status for r in reads] == [200, 200, 200, 200, 200, 200, 401]
    assert direct.json["data"]["attributes"]["registry_base"] == "https://harbor.example.test"
    secrets = [password, broker_token, generated_token, acct.token]
    for answer in [*reads, direct]:
        for secret in secrets:
            assert secret not in answer.body.decode()
    logs = stream.getvalue()
    assert "api request" in logs  # the requests were logged
    for secret in secrets:
        assert secret not in logs
    # stored encrypted: not in the database file's rows either
    async with api.db.sessions() as session:
        row = await session.get(Integration, uuid.UUID(direct_id))
        assert row is not None and row.credentials_encrypted is not None
        assert password.encode() not in row.credentials_encrypted
