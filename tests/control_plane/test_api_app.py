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
