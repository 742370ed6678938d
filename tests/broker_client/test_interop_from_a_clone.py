"""The interop tests need nothing beside the clone (issue 10 item 16): snyk-broker's data come
from the npm package, and with no ``../shared`` the broker runs on the config.default.json that
``tests/support/snyk_broker.prepare`` writes itself. Proven here by running the real server
and the real client from a directory laid out like a fresh clone's cache."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path

import pytest

from deploy import stack as st
from tests.broker_client.conftest import SECRET_BLOB, Apps, start_our_client
from tests.support import snyk_broker

pytestmark = pytest.mark.interop


def test_prepare_writes_a_minimal_config_without_the_reference(tmp_path: Path) -> None:
    snyk_broker.prepare(tmp_path, tmp_path / "nowhere")
    written = json.loads((tmp_path / "config.default.json").read_text())
    assert written == snyk_broker.MINIMAL_CONFIG
    reference = tmp_path / "reference"
    reference.mkdir()
    (reference / "config.default.json").write_text('{"API_VERSION": "x"}')
    snyk_broker.prepare(tmp_path, reference)  # the reference wins when it is there
    assert json.loads((tmp_path / "config.default.json").read_text()) == {"API_VERSION": "x"}


def test_stock_filter_comes_from_the_npm_package() -> None:
    snyk_broker.require_snyk_broker()
    path = snyk_broker.stock_accept_path()
    assert snyk_broker.PACKAGE_DIR in path.parents
    rules = json.loads(path.read_text())
    assert any(r["path"] == "/list" and r["origin"] == "${CR_AGENT_URL}" for r in rules["private"])


def test_real_server_from_a_clone_relays_to_our_client(apps: Apps, tmp_path: Path) -> None:
    root = snyk_broker.clone_root(tmp_path)
    assert json.loads((root / "config.default.json").read_text()) == snyk_broker.MINIMAL_CONFIG
    server = snyk_broker.start_server(
        tmp_path / "server", accept=snyk_broker.server_accept(apps.upstream_url), root=root
    )
    client = start_our_client(tmp_path, server_url=server.url, agent_url=apps.agent_url)
    try:
        snyk_broker.wait_for_clients(server.url, client.token, 2, timeout=20)
        url = f"{server.url}/broker/{client.token}/list"
        with urllib.request.urlopen(url, timeout=30) as resp:
            echoed = json.loads(resp.read())
        assert echoed["path_qs"] == "/list"
        assert echoed["headers"]["authorization"] == SECRET_BLOB
    finally:
        client.stop()
        server.stop()


def test_real_client_from_a_clone_serves_our_server(apps: Apps, tmp_path: Path) -> None:
    root = snyk_broker.clone_root(tmp_path)
    token = str(uuid.uuid4())
    server = st.start_broker_server(tmp_path / "ours", token=token, upstream_url=apps.upstream_url)
    client = snyk_broker.start_client(
        tmp_path / "snyk-client",
        token=token,
        server_url=server.url,
        env={"CR_AGENT_URL": apps.agent_url},
        root=root,
    )
    try:
        st.wait_for_connection(server.url, token)
        with urllib.request.urlopen(f"{server.url}/broker/{token}/list", timeout=30) as resp:
            assert json.loads(resp.read())["path_qs"] == "/list"
    finally:
        client.stop()
        server.stop()
