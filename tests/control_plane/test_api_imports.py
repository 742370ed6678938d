"""Import, import jobs, re-test and scan history over HTTP, every answer checked against the
OpenAPI document; bad input named and nothing stored; another org's ids answer 404."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from control_plane.api import create_api_app
from control_plane.api import imports as imports_api
from control_plane.db import Database
from control_plane.encryption import SecretBox
from control_plane.models import ImportJob, Project, Scan, Target
from control_plane.queue import services as queue
from tests.control_plane import factories
from tests.control_plane.api_client import ApiClient


@pytest.fixture
async def flow_api(db: Database, box: SecretBox) -> AsyncIterator[tuple[ApiClient, list[int]]]:
    app = create_api_app(db, box)
    imports_api.add_routes(app.router)
    wakes: list[int] = []
    app[imports_api.WAKE] = lambda: wakes.append(1)
    server = TestServer(app)
    await server.start_server()
    async with ClientSession() as http:
        yield ApiClient(http, str(server.make_url("")).rstrip("/"), db), wakes
    await server.close()


async def _setup(db: Database, box: SecretBox) -> tuple[factories.Account, str]:
    async with db.sessions() as session, session.begin():
        acct = await factories.account(session)
        hub = await factories.integration(session, box, acct.org)
    return acct, str(hub.id)


async def _count(db: Database, model: type) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_v1_import_answers_201_with_a_job_to_poll_and_queues_a_scan(
    db: Database, box: SecretBox, flow_api: tuple[ApiClient, list[int]]
) -> None:
    api, wakes = flow_api
    acct, integration = await _setup(db, box)
    path = f"/v1/org/{acct.org.id}/integrations/{integration}/import"
    answer = await api.call(
        "POST", path, token=acct.token, body={"target": {"name": "team/app:1.2"}},
        content_type="application/json",
    )  # fmt: skip
    assert answer.status == 201, answer.body
    location = answer.headers["Location"]
    assert location.startswith(api.base + path + "/")
    job = await api.get(location.removeprefix(api.base), token=acct.token)
    assert job.status == 200
    assert job.json["status"] == "pending"
    (log,) = job.json["logs"]
    assert log["name"] == "team/app:1.2" and log["status"] == "pending"
    assert wakes, "the dispatcher was not woken"
    async with db.sessions() as session:
        project = await session.scalar(select(Project))
        target = await session.scalar(select(Target))
        scan = await session.scalar(select(Scan))
    assert project is not None and target is not None and scan is not None
    assert (target.repository, project.target_reference, project.origin) == (
        "team/app",
        "1.2",
        "docker-hub",
    )
    assert (scan.status, scan.reason, scan.priority) == ("queued", "import", queue.PRIORITY_ADHOC)
    assert scan.requested_by == acct.user.id and project.importer_id == acct.user.id


async def test_rest_import_retest_and_history(
    db: Database, box: SecretBox, flow_api: tuple[ApiClient, list[int]]
) -> None:
    api, _ = flow_api
    acct, integration = await _setup(db, box)
    body = {
        "data": {"type": "import", "attributes": {"targets": [{"name": "a:1"}, {"name": "b:2"}]}}
    }
    answer = await api.call(
        "POST",
        f"/rest/orgs/{acct.org.id}/integrations/{integration}/import",
        token=acct.token,
        body=body,
    )
    assert answer.status == 202, answer.body
    job = answer.json["data"]
    assert [i["name"] for i in job["attributes"]["images"]] == ["a:1", "b:2"]
    polled = await api.get(answer.headers["Location"], token=acct.token)
    assert polled.json["data"]["id"] == job["id"]
    project = job["attributes"]["images"][0]["project_id"]
    scans_path = f"/rest/orgs/{acct.org.id}/projects/{project}/scans"
    retest = await api.call("POST", scans_path, token=acct.token)
    assert retest.status == 202 and retest.json["data"]["attributes"]["reason"] == "retest"
    history = await api.get(scans_path, token=acct.token)
    assert [s["attributes"]["reason"] for s in history.json["data"]] == ["import", "retest"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"target": {"name": "no-tag"}}, "has no tag"),
        ({"target": {"name": "app@sha256:abc"}}, "no digest"),
        ({"target": {"name": ""}}, "non-empty string"),
        ({"target": "app:1"}, '{"target": {"name"'),
        ({"files": []}, '{"target": {"name"'),
    ],
)
async def test_v1_import_refuses_a_bad_body_naming_it_and_stores_nothing(
    db: Database,
    box: SecretBox,
    flow_api: tuple[ApiClient, list[int]],
    body: object,
    says: str,
) -> None:
    api, _ = flow_api
    acct, integration = await _setup(db, box)
    answer = await api.call(
        "POST", f"/v1/org/{acct.org.id}/integrations/{integration}/import", token=acct.token,
        body=body, content_type="application/json",
    )  # fmt: skip
    assert answer.status == 400, answer.body
    assert answer.json["code"] == 400 and says in answer.json["message"]
    assert await _count(db, Scan) == 0 and await _count(db, ImportJob) == 0


async def test_another_orgs_integration_and_project_answer_404_and_no_token_401(
    db: Database, box: SecretBox, flow_api: tuple[ApiClient, list[int]]
) -> None:
    api, _ = flow_api
    mine, _ = await _setup(db, box)
    theirs, their_integration = await _setup(db, box)
    body = {"target": {"name": "app:1"}}
    wrong_org = await api.call(
        "POST", f"/v1/org/{theirs.org.id}/integrations/{their_integration}/import",
        token=mine.token, body=body, content_type="application/json",
    )  # fmt: skip
    assert wrong_org.status == 404
    crossed = await api.call(
        "POST", f"/v1/org/{mine.org.id}/integrations/{their_integration}/import",
        token=mine.token, body=body, content_type="application/json",
    )  # fmt: skip
    assert crossed.status == 404
    anonymous = await api.call(
        "POST", f"/v1/org/{mine.org.id}/integrations/{their_integration}/import",
        token="wrong-token-wrong-token", body=body, content_type="application/json",
    )  # fmt: skip
    assert anonymous.status == 401
    rest = await api.call(
        "POST",
        f"/rest/orgs/{theirs.org.id}/integrations/{their_integration}/import",
        token=mine.token,
        body={"data": {"type": "import", "attributes": {"targets": [{"name": "a:1"}]}}},
    )
    assert rest.status == 404
    assert await _count(db, Scan) == 0


async def test_rest_import_names_the_bad_target(
    db: Database, box: SecretBox, flow_api: tuple[ApiClient, list[int]]
) -> None:
    api, _ = flow_api
    acct, integration = await _setup(db, box)
    body = {"data": {"type": "import", "attributes": {"targets": [{"name": "a:1"}, {"name": "b"}]}}}
    answer = await api.call(
        "POST",
        f"/rest/orgs/{acct.org.id}/integrations/{integration}/import",
        token=acct.token,
        body=body,
    )
    assert answer.status == 400
    assert answer.error()["source"] == {"pointer": "/data/attributes/targets/1/name"}
    assert await _count(db, Scan) == 0 and await _count(db, Project) == 0


async def test_repository_tags_go_on_the_target_and_the_project_keeping_a_users_own(
    db: Database, box: SecretBox
) -> None:
    from control_plane.imports.services import apply_repository_tags
    from control_plane.projects.services import replace_tags

    async with db.sessions() as session, session.begin():
        _, project = await _imported(session, box)
        replace_tags(project, [("owner", "team-a")])
        await apply_repository_tags(
            session,
            project.id,
            [{"Key": "port-auth-service", "Value": ""}, {"Key": "env", "Value": "prod"}],
        )
    async with db.sessions() as session, session.begin():
        await apply_repository_tags(session, project.id, [{"Key": "port-billing", "Value": "x"}])
    async with db.sessions() as session:
        found = await session.get(Project, project.id)
        assert found is not None
        target = await session.get(Target, found.target_id)
        assert target is not None
        assert target.tags == [{"Key": "port-billing", "Value": "x"}]
        assert [(t.key, t.value) for t in found.tags] == [
            ("port-billing", "x"),
            ("owner", "team-a"),
        ]


async def _imported(session: Any, box: SecretBox) -> tuple[factories.Account, Project]:
    from control_plane.imports.services import ImageName, get_import_job, import_images

    acct = await factories.account(session)
    ecr = await factories.integration(session, box, acct.org, "ecr")
    job = await import_images(
        session, acct.org.id, ecr.id, [ImageName("team/app", "1")], user_id=acct.user.id
    )
    _, entries = await get_import_job(session, acct.org.id, job.id)
    return acct, entries[0].project
