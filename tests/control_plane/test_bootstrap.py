"""First start, settings, the key file and ``crbroker-server token create``."""

from __future__ import annotations

import asyncio
import io
import stat
from pathlib import Path

import pytest
from sqlalchemy import func, select

from control_plane import cli
from control_plane.accounts.services import authenticate
from control_plane.bootstrap import open_control_plane
from control_plane.encryption import SecretKeyError, load_box
from control_plane.models import ApiToken, Org
from control_plane.settings import SettingsError, load_settings

ADMIN_TOKEN = "admin-token-0123456789abcdef"


async def test_first_start_makes_one_org_and_the_admin_token(
    database_url: str, tmp_path: Path
) -> None:
    settings = load_settings(
        {
            "DATABASE_URL": database_url,
            "CRBROKER_DATA_DIR": str(tmp_path),
            "CRBROKER_ADMIN_TOKEN": ADMIN_TOKEN,
            "CRBROKER_ORG_NAME": "Acme Security",
        }
    )
    for _ in range(2):  # a restart changes nothing
        plane = await open_control_plane(settings)
        async with plane.db.sessions() as session, session.begin():
            assert await session.scalar(select(func.count()).select_from(Org)) == 1
            assert await session.scalar(select(func.count()).select_from(ApiToken)) == 1
            principal = await authenticate(session, ADMIN_TOKEN)
            assert principal is not None and principal.is_admin
            org = await session.scalar(select(Org))
            assert org is not None and org.slug == "acme-security"
            stored = await session.scalar(select(ApiToken.token_hash))
            assert stored != ADMIN_TOKEN and ADMIN_TOKEN not in str(stored)
        await plane.close()
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_replicas_starting_together_make_one_org(database_url: str, tmp_path: Path) -> None:
    settings = load_settings({"DATABASE_URL": database_url, "CRBROKER_DATA_DIR": str(tmp_path)})
    first = await open_control_plane(settings)
    planes = await asyncio.gather(
        open_control_plane(settings), open_control_plane(settings), return_exceptions=True
    )
    try:
        assert not [p for p in planes if isinstance(p, BaseException)]
        async with first.db.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Org)) == 1
    finally:
        await first.close()
        for plane in planes:
            if not isinstance(plane, BaseException):
                await plane.close()


def test_token_create_prints_a_working_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRBROKER_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    out, err = io.StringIO(), io.StringIO()
    assert (
        cli.run(["token", "create", "--user", "catalog-bot", "--name", "port"], out=out, err=err)
        == 0
    )
    token = out.getvalue().strip()
    assert len(token) == 36

    async def check() -> None:
        plane = await open_control_plane(load_settings())
        async with plane.db.sessions() as session:
            principal = await authenticate(session, token)
            assert principal is not None and not principal.is_admin
            assert len(principal.org_ids) == 1
        await plane.close()

    asyncio.run(check())
    assert (tmp_path / "control-plane.db").exists()
    bad = io.StringIO()
    assert cli.run(["token", "create", "--org", "no-such-org"], out=io.StringIO(), err=bad) == 2
    assert "no-such-org" in bad.getvalue()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"CRBROKER_ADMIN_TOKEN": "short"}, "CRBROKER_ADMIN_TOKEN"),
        ({"DATABASE_POOL_SIZE": "0"}, "DATABASE_POOL_SIZE"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert str(caught.value).startswith(named)
    assert "short" not in str(caught.value)


def test_database_urls_get_their_async_drivers(tmp_path: Path) -> None:
    assert (
        load_settings({"DATABASE_URL": "postgres://u@h/db"}).database_url
        == "postgresql+asyncpg://u@h/db"
    )
    assert (
        load_settings({"DATABASE_URL": "sqlite:////tmp/x.db"}).database_url
        == "sqlite+aiosqlite:////tmp/x.db"
    )
    default = load_settings({"CRBROKER_DATA_DIR": str(tmp_path)}).database_url
    assert default == f"sqlite+aiosqlite:///{tmp_path / 'control-plane.db'}"


def test_a_wrong_or_changed_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(SecretKeyError, match="CRBROKER_SECRET_KEY"):
        load_box("not-a-key", tmp_path / "unused")
    sealed = load_box(None, tmp_path / "k").encrypt(b"secret")
    other = load_box(None, tmp_path / "k2")
    with pytest.raises(SecretKeyError, match="CRBROKER_SECRET_KEY"):
        other.decrypt(sealed)
