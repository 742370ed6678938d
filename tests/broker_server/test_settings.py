"""Start-up settings of ``broker-server``: bad values stop it with exit code 2 and one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker_server.settings import SettingsError, load_settings
from broker_server.tokens import TokenRegistry

REPO = Path(__file__).resolve().parents[2]
GOOD = "7b1d3c0e-4a2f-4c55-9e8d-5f0a1b2c3d4e"


def run_server(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **env}
    return subprocess.run(
        [sys.executable, "-m", "broker_server"],
        env=full,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "BROKER_TOKENS"),
        ({"BROKER_TOKENS": GOOD, "PORT": "http"}, "PORT"),
        ({"BROKER_TOKENS": GOOD, "SOCKET_PING_INTERVAL": "-5"}, "SOCKET_PING_INTERVAL"),
        (
            {"BROKER_TOKENS": GOOD, "MINIMAL_SUPPORTED_BROKER_VERSION": "four"},
            "MINIMAL_SUPPORTED_BROKER_VERSION",
        ),
        ({"BROKER_TOKENS": GOOD, "ACCEPT": "/nonexistent/accept.json"}, "ACCEPT"),
        ({"BROKER_TOKEN_FILE": "/nonexistent/tokens"}, "BROKER_TOKEN_FILE"),
        ({"BROKER_TOKENS": "short"}, "BROKER_TOKENS"),
        ({"BROKER_TOKENS": GOOD, "LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"BROKER_TOKENS": GOOD, "UPSTREAM_URL": "ftp://x"}, "UPSTREAM_URL"),
    ],
)
def test_bad_settings_exit_2_with_one_line(env, variable):
    result = run_server(env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr


def test_token_file_and_list_are_merged_and_lower_cased(tmp_path):
    token_file = tmp_path / "tokens"
    token_file.write_text("# comment\nAAAA1111-bbbb-2222\n\n  cccc3333-dddd-4444  # trailing\n")
    _, _, tokens = load_settings(
        {"BROKER_TOKENS": GOOD.upper(), "BROKER_TOKEN_FILE": str(token_file)}
    )
    assert tokens == [GOOD, "aaaa1111-bbbb-2222", "cccc3333-dddd-4444"]


def test_token_registry_lookup():
    registry = TokenRegistry([GOOD])
    assert registry.lookup(GOOD.upper()) == GOOD
    assert registry.lookup(GOOD[:-1]) is None
    assert registry.lookup("") is None
    assert TokenRegistry.same(GOOD, GOOD.upper())
    described = TokenRegistry.describe(GOOD)
    assert GOOD not in str(described) and described["token_masked"] == "7b1d-...-3d4e"


def test_settings_error_is_one_line():
    with pytest.raises(SettingsError, match=r"^PORT: "):
        load_settings({"BROKER_TOKENS": GOOD, "PORT": "70000"})


def test_upstream_url_alone_brings_default_callback_rules():
    _, rules, _ = load_settings({"BROKER_TOKENS": GOOD, "UPSTREAM_URL": "http://127.0.0.1:9100/"})
    assert rules is not None
    rule = rules.match_private("POST", "/api/v2/import/done")
    assert rule is not None and rule.origin == "${UPSTREAM_URL}"
    assert rules.match_private("GET", "/api/v2/import/done") is None


def test_rules_naming_upstream_url_need_it(tmp_path):
    accept = tmp_path / "accept.json"
    accept.write_text(
        '{"private":[{"method":"POST","path":"/x","origin":"${UPSTREAM_URL}"}],"public":[]}'
    )
    with pytest.raises(SettingsError, match=r"^UPSTREAM_URL: required"):
        load_settings({"BROKER_TOKENS": GOOD, "ACCEPT": str(accept)})


def test_inflight_limits_must_hold_the_largest_message_twice():
    with pytest.raises(
        SettingsError,
        match=r"^BROKER_SERVER_MAX_INFLIGHT_BYTES_PER_TOKEN: 30000000 is less than twice "
        r"SOCKET_MAX_RESPONSE_LENGTH \(44040192\)",
    ):
        load_settings(
            {"BROKER_TOKENS": GOOD, "BROKER_SERVER_MAX_INFLIGHT_BYTES_PER_TOKEN": "30000000"}
        )
    settings, _, _ = load_settings({"BROKER_TOKENS": GOOD})
    assert settings.BROKER_SERVER_MAX_CONNECTIONS_PER_TOKEN == 10
    assert settings.BROKER_SERVER_MAX_INFLIGHT_BYTES == 256 * 1024 * 1024
    assert settings.BROKER_SERVER_STREAM_IDLE_TIMEOUT == 60000
