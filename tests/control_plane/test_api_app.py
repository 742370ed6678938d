"""The request pipeline other views build on: one transaction, work after its commit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from control_plane.accounts.services import create_org
from control_plane.api import create_api_app, on_commit, session_of
from control_plane.db import Database
from control_plane.encryption import SecretBox
from control_plane.errors import InvalidInput
from control_plane.models import Org
from tests.control_plane import factories


@pytest.fixture
async def pipeline(db: Database, box: SecretBox) -> AsyncIterator[tuple[str, list[str], str]]:
    calls: list[str] = []

    async def make_org(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        await create_org(session_of(request), name)
        on_commit(request, lambda: calls.append(name))
        if request.query.get("fail"):
            raise InvalidInput("refused after writing", parameter="fail")
        return web.json_response({"ok": True})

    app = create_api_app(db, box)
    app.router.add_post("/v1/test-orgs/{name}", make_org)
    async with db.sessions() as session, session.begin():
        acct = await factories.account(session)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), calls, acct.token
    await server.close()


async def test_after_commit_work_runs_only_when_the_transaction_commits(
    db: Database, pipeline: tuple[str, list[str], str]
) -> None:
    base, calls, token = pipeline
    headers = {"Authorization": f"token {token}"}
    async with ClientSession() as http:
        async with http.post(f"{base}/v1/test-orgs/kept", headers=headers) as ok:
            assert ok.status == 200
        assert calls == ["kept"]  # before the answer was sent
        async with http.post(f"{base}/v1/test-orgs/dropped?fail=1", headers=headers) as refused:
            assert refused.status == 400
    assert calls == ["kept"]
    async with db.sessions() as session:
        names = set(await session.scalars(select(Org.name)))
        assert "kept" in names and "dropped" not in names
        assert await session.scalar(select(func.count()).select_from(Org)) == 2


async def test_a_fault_of_ours_is_a_json_api_500_naming_the_request_id_and_nothing_is_kept(
    db: Database, box: SecretBox
) -> None:
    secret = "s3cr3t-" + "x" * 20

    async def broken(request: web.Request) -> web.Response:
        await create_org(session_of(request), "half-done")
        raise RuntimeError(f"a bug holding {secret}")

    app = create_api_app(db, box)
    app.router.add_get("/rest/test-broken", broken)
    app.router.add_get("/v1/test-broken", broken)
    async with db.sessions() as session, session.begin():
        acct = await factories.account(session)
    server = TestServer(app)
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    headers = {"Authorization": f"token {acct.token}", "snyk-request-id": "req-42"}
    try:
        async with ClientSession() as http:
            async with http.get(
                f"{base}/rest/test-broken?version=2024-05-31", headers=headers
            ) as rest:
                assert rest.status == 500
                assert rest.content_type == "application/vnd.api+json"
                [error] = (await rest.json(content_type=None))["errors"]
                assert error["status"] == "500" and "request id req-42" in error["detail"]
                assert secret not in await rest.text()
            async with http.get(f"{base}/v1/test-broken", headers=headers) as v1:
                assert v1.status == 500
                answer = await v1.json()
                assert answer["code"] == 500 and "req-42" in answer["message"]
                assert secret not in await v1.text()
    finally:
        await server.close()
    async with db.sessions() as session:
        assert "half-done" not in set(await session.scalars(select(Org.name)))
