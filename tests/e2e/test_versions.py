"""One version string (issue 10 item 12): ``--version``/``--help`` on the three commands with
no settings at all, and the same version in each service's ``/healthcheck`` and in the
client's identify message (as the server lists it)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from broker_client.settings import CLIENT_VERSION, PROTOCOL_VERSION
from shared.version import package_version
from tests.e2e.conftest import Trio

BIN = Path(sys.executable).parent
COMMANDS = ("broker-client", "cr-agent", "broker-server")
#: pyproject.toml's version, read the way a packager would see it
PYPROJECT_VERSION = next(
    line.split('"')[1]
    for line in (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text().splitlines()
    if line.startswith("version = ")
)


def run(command: str, *args: str) -> subprocess.CompletedProcess[str]:
    # no settings at all: an empty environment but for PATH
    return subprocess.run(
        [str(BIN / command), *args],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_package_version_is_pyprojects() -> None:
    assert package_version() == PYPROJECT_VERSION
    assert CLIENT_VERSION == f"{PROTOCOL_VERSION}+crbroker.{PYPROJECT_VERSION}"


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("flag", ["--version", "-V", "--help", "-h"])
def test_version_and_help_need_no_settings(command: str, flag: str) -> None:
    result = run(command, flag)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    if flag in ("--version", "-V"):
        assert result.stdout.startswith(f"{command} {PYPROJECT_VERSION}")
        assert result.stdout.count("\n") == 1
    else:
        assert result.stdout.startswith(f"usage: {command} ")
        assert "--version" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_unknown_argument_is_a_usage_error(command: str) -> None:
    result = run(command, "--frobnicate")
    assert result.returncode == 2
    assert "--frobnicate" in result.stderr or "usage:" in result.stderr
    assert "Traceback" not in result.stderr


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_healthchecks_and_identify_carry_the_same_version(trio: Trio) -> None:
    assert get_json(f"{trio.agent.url}/healthcheck")["version"] == PYPROJECT_VERSION  # type: ignore[index]
    assert get_json(f"{trio.server.url}/healthcheck")["version"] == PYPROJECT_VERSION  # type: ignore[index]
    client_health = get_json(f"{trio.client.url}/healthcheck")
    assert isinstance(client_health, list)
    assert {entry["version"] for entry in client_health} == {CLIENT_VERSION}
    listed = get_json(f"{trio.server.url}/connection-status/{trio.token}")
    assert isinstance(listed, dict)
    assert {c["version"] for c in listed["clients"]} == {CLIENT_VERSION}
