"""Control-plane fixtures: every storage test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from cryptography.fernet import Fernet

from control_plane.api import create_api_app
from control_plane.db import Database, open_database
from control_plane.encryption import SecretBox
from tests.control_plane.api_client import ApiClient
from tests.support.postgres import postgres_server  # noqa: F401 - re-exported fixture


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'control-plane.db'}"
    server = request.getfixturevalue("postgres_server")
    url: str = server.create_database()
    return url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await open_database(database_url, pool_size=5)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key())


@pytest.fixture
async def api(db: Database, box: SecretBox) -> AsyncIterator[ApiClient]:
    server = TestServer(create_api_app(db, box))
    await server.start_server()
    async with ClientSession() as http:
        yield ApiClient(http, str(server.make_url("")).rstrip("/"), db)
    await server.close()
