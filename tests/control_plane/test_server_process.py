"""``crbroker-server`` as a process: version, help, settings errors, ``token create`` wired to
the control plane, the relay admitting exactly the brokered integrations' tokens, and the
HEALTHCHECK of Dockerfile.server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from sqlalchemy import update

from broker_server.tokens import TokenRegistry
from control_plane.db import Database
from control_plane.encryption import SecretBox
from control_plane.models import Integration
from control_plane.server import TokenSync, package_version
from deploy import stack as st
from deploy.processes import refused_port
from tests.control_plane import factories
from tests.e2e.test_dockerfiles import healthcheck_argv, parse

REPO = Path(__file__).resolve().parents[2]


def crbroker_server(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [*st.command("crbroker-server", "control_plane"), *args],
        env={**base, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_version_and_help() -> None:
    done = crbroker_server("--version", env={})
    assert done.returncode == 0 and done.stdout.strip() == f"crbroker-server {package_version()}"
    helped = crbroker_server("--help", env={})
    assert helped.returncode == 0
    for word in ("relay", "control-plane", "token create"):
        assert word in helped.stdout


def test_a_bad_setting_is_named_and_exits_2(tmp_path: Path) -> None:
    done = crbroker_server(env={"CONTROL_PLANE_PORT": "eighty", "CRBROKER_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2 and "CONTROL_PLANE_PORT" in done.stderr
    relay = crbroker_server("relay", env={"CRBROKER_DATA_DIR": str(tmp_path)})
    assert relay.returncode == 2 and "BROKER_TOKENS" in relay.stderr
    url = "postgresql://cp:pw-not-to-be-shown@127.0.0.1:1/cp"
    away = crbroker_server(env={"DATABASE_URL": url, "CRBROKER_DATA_DIR": str(tmp_path)})
    assert away.returncode == 2 and "DATABASE_URL" in away.stderr
    assert "pw-not-to-be-shown" not in away.stderr + away.stdout


def test_token_create_makes_a_token_the_running_server_accepts(tmp_path: Path) -> None:
    data = {"CRBROKER_DATA_DIR": str(tmp_path / "data")}
    made = crbroker_server("token", "create", "--user", "ci", "--admin", env=data)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert len(token) >= 16 and token not in made.stderr
    server = st.start_crbroker_server(tmp_path, env=data)
    try:
        request = urllib.request.Request(
            f"{server.api_url}/rest/orgs?version=2024-05-31",
            headers={"Authorization": f"token {token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200 and json.loads(resp.read())["data"]
        assert token not in server.log_text()
        # the Dockerfile's HEALTHCHECK command tells a live server from nothing
        argv = healthcheck_argv(parse(REPO / "Dockerfile.server"))
        argv[0] = sys.executable
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}
        live = {**base, "CONTROL_PLANE_PORT": str(server.api_port)}
        assert subprocess.run(argv, env=live, capture_output=True, timeout=30).returncode == 0
        relay = {**base, "CRBROKER_MODE": "relay", "PORT": str(server.port)}
        assert subprocess.run(argv, env=relay, capture_output=True, timeout=30).returncode == 0
        dead = {**base, "CONTROL_PLANE_PORT": str(refused_port())}
        assert subprocess.run(argv, env=dead, capture_output=True, timeout=30).returncode != 0
    finally:
        server.stop()


async def test_the_relay_admits_exactly_the_active_brokered_integrations_tokens(
    db: Database, box: SecretBox
) -> None:
    async with db.sessions() as session, session.begin():
        acct = await factories.account(session)
        brokered = await factories.integration(
            session, box, acct.org, broker_token="tok-" + "a" * 20
        )
        await factories.integration(session, box, acct.org, brokered=False)
    registry = TokenRegistry([])
    sync = TokenSync(registry, db.sessions, box)
    await sync.sync()
    assert registry.lookup("tok-" + "a" * 20) == "tok-" + "a" * 20 and len(registry) == 1
    async with db.sessions() as session, session.begin():
        await session.execute(
            update(Integration).where(Integration.id == brokered.id).values(is_active=False)
        )
    await sync.sync()
    assert registry.lookup("tok-" + "a" * 20) is None and len(registry) == 0
