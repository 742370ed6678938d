"""``cr-agent serve`` as a process: settings from the environment, HTTPS, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cr_agent.service.settings import DEFAULT_PORT, SettingsError, load_settings
from deploy.processes import ServerProcess, refused_port, start_reporting, wait_for_http
from tests.cr_agent.service.agent import SECRET, SECRET_HEADERS
from tests.support.eventually import eventually
from tests.support.registry import self_signed_server_cert

ROOT = Path(__file__).resolve().parents[3]
#: settings every test here starts from: the agent does not start without a secret
BASE = {"CR_AGENT_SECRET": SECRET}


def agent_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SNYK_", "HTTPS_", "MAX_", "CR_", "BROKER_"))
    }
    env.pop("PORT", None)
    env.update(
        {
            "SPOOL_DIR": str(tmp_path / "spool"),
            "LOG_LEVEL": "info",
            "HOST": "127.0.0.1",
            "CR_AGENT_SECRET": SECRET,
        }
    )
    env.update(extra)
    return env


def test_port_comes_from_snyk_port_then_port_then_default() -> None:
    assert load_settings(BASE).port == DEFAULT_PORT == 8081
    assert load_settings({**BASE, "PORT": "9000"}).port == 9000
    assert load_settings({**BASE, "PORT": "9000", "SNYK_PORT": "9100"}).port == 9100
    assert load_settings({**BASE, "SNYK_PORT": "0"}).port == 0


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"MAX_ACTIVE_OPERATIONS": "none"}, "MAX_ACTIVE_OPERATIONS"),
        ({"MAX_ACTIVE_OPERATIONS": "0"}, "MAX_ACTIVE_OPERATIONS"),
        ({"SNYK_PORT": "70000"}, "SNYK_PORT"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"HTTPS_CERT": "/nonexistent.pem", "HTTPS_KEY": "/nonexistent.key"}, "HTTPS_CERT"),
        ({"BROKER_CLIENT_URL": "broker:8000"}, "BROKER_CLIENT_URL"),
        ({"MAX_IMAGE_SIZE_IN_BYTES": "-5"}, "MAX_IMAGE_SIZE_IN_BYTES"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({**BASE, **env})
    assert str(caught.value).startswith(variable)


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"MAX_ACTIVE_OPERATIONS": "many"}, "MAX_ACTIVE_OPERATIONS"),
        ({"CR_AGENT_SECRET": ""}, "CR_AGENT_SECRET"),  # no secret and auth not switched off
        ({"CR_AGENT_SECRET": "too-short"}, "CR_AGENT_SECRET"),
    ],
)
def test_bad_setting_exits_2_with_one_line(
    tmp_path: Path, extra: dict[str, str], variable: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cr_agent", "serve"],
        env=agent_env(tmp_path, **extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], lines
    secret = extra.get("CR_AGENT_SECRET")
    if secret:
        assert secret not in lines[0]  # the variable is named, never its value


def test_serve_on_snyk_port_and_stop_cleanly_on_sigterm(tmp_path: Path) -> None:
    # SNYK_PORT wins over PORT, which names a port nobody can bind
    server, ports = start_reporting(
        [sys.executable, "-m", "cr_agent", "serve"],
        env=agent_env(tmp_path, SNYK_PORT="0", PORT=str(refused_port())),
        cwd=ROOT,
        log_path=tmp_path / "agent.log",
        name="cr-agent",
    )
    port = ports["SNYK_PORT"]
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthcheck", timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=5) as resp:
            body = json.load(resp)
        assert body["ok"] is True and body["maxActiveOperations"] == 1
        started = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        assert server.proc is not None
        assert server.proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 15
    finally:
        server.stop()
    events = [
        json.loads(line)["event"] for line in server.log_text().splitlines() if line.startswith("{")
    ]
    assert "cr-agent listening" in events and "cr-agent stopping" in events


def test_port_zero_binds_a_free_port_and_logs_it(tmp_path: Path) -> None:
    server = ServerProcess(
        [sys.executable, "-m", "cr_agent", "serve"],
        env=agent_env(tmp_path, SNYK_PORT="0"),
        cwd=ROOT,
        log_path=tmp_path / "agent.log",
    )
    server.start()

    def logged_port() -> int:
        events = [json.loads(line) for line in server.log_text().splitlines() if line[:1] == "{"]
        ports = [e["port"] for e in events if e.get("event") == "cr-agent listening"]
        assert ports, server.log_text()
        return int(ports[0])

    try:
        port = eventually(logged_port, timeout=30)
        assert port != 0
        wait_for_http(f"http://127.0.0.1:{port}/healthcheck", timeout=10)
    finally:
        server.stop()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert_pem, key_pem = self_signed_server_cert()
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key_pem)
    return cert_path, key_path


def test_https_with_cert_and_key(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server, ports = start_reporting(
        [sys.executable, "-m", "cr_agent", "serve"],
        env=agent_env(tmp_path, SNYK_PORT="0", HTTPS_CERT=str(cert), HTTPS_KEY=str(key)),
        cwd=ROOT,
        log_path=tmp_path / "agent.log",
        name="cr-agent",
    )
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(
            f"https://127.0.0.1:{ports['SNYK_PORT']}/healthcheck", timeout=5, context=ctx
        ) as resp:
            assert json.load(resp)["ok"] is True
    finally:
        server.stop()


def test_sigterm_is_not_held_up_by_a_hanging_registry_request(tmp_path: Path) -> None:
    import socket
    import threading

    from shared.credentials import build_credentials_json, encode_credentials

    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(hang.accept()[0]), daemon=True).start()
    server, ports = start_reporting(
        [sys.executable, "-m", "cr_agent", "serve"],
        env=agent_env(tmp_path, SNYK_PORT="0", REGISTRY_TIMEOUT="120", REQUEST_TIMEOUT="300"),
        cwd=ROOT,
        log_path=tmp_path / "agent.log",
        name="cr-agent",
    )
    port = ports["SNYK_PORT"]
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthcheck", timeout=30)
        creds = encode_credentials(
            build_credentials_json(
                "generic-cr",
                base=f"http://127.0.0.1:{hang.getsockname()[1]}",
                username="u",
                password="p",
            )
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/list", headers={"Authorization": creds, **SECRET_HEADERS}
        )

        def ask() -> None:
            try:
                urllib.request.urlopen(request, timeout=60).close()
            except OSError:
                pass  # the agent going away mid-request is the point of this test

        threading.Thread(target=ask, daemon=True).start()
        eventually(lambda: bool(accepted), timeout=10)  # the agent reached the hanging registry
        started = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        assert server.proc is not None
        assert server.proc.wait(timeout=20) == 0
        assert time.monotonic() - started < 12
    finally:
        server.stop()
        hang.close()
        for conn in accepted:
            conn.close()


def test_layer_cache_is_on_by_default_and_off_turns_it_off() -> None:
    from cr_agent.service.settings import load_settings

    assert load_settings(BASE).LAYER_CACHE_DIR is not None
    assert load_settings({**BASE, "LAYER_CACHE_DIR": "off"}).LAYER_CACHE_DIR is None
