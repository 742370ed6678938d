"""Credentials from a Docker config: auths, credsStore, credHelpers, identity tokens, Hub keys."""

from __future__ import annotations

import base64
import json
import os

import pytest

from cr_agent.registry.docker_config import (
    CredentialHelperError,
    auth_from_cr_credentials,
    auth_from_docker_config,
)
from shared.credentials import build_credentials_json, encode_credentials


def _helper(tmp_path, name: str, answers: dict[str, dict]) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    script = bindir / f"docker-credential-{name}"
    cases = "\n".join(
        f"  '{server}') echo '{json.dumps(answer)}' ;;" for server, answer in answers.items()
    )
    script.write_text(
        '#!/bin/sh\nread server\ncase "$server" in\n'
        f"{cases}\n  *) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n"
    )
    script.chmod(0o755)


@pytest.fixture
def path_with_helpers(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    return tmp_path


def test_auths_entry_forms():
    auth = base64.b64encode(b"user:pa:ss").decode()
    config = {
        "auths": {
            "https://index.docker.io/v1/": {"auth": auth},
            "reg.example:5000": {"identitytoken": "refresh-123"},
            "https://other.example/v2/": {"username": "u", "password": "p"},
        }
    }
    hub = auth_from_docker_config("docker.io", config)
    assert (hub.username, hub.password) == ("user", "pa:ss")
    assert auth_from_docker_config("reg.example:5000", config).identity_token == "refresh-123"
    assert auth_from_docker_config("other.example", config).password == "p"
    assert auth_from_docker_config("nowhere.example", config) is None


def test_creds_store_and_cred_helpers(path_with_helpers):
    tmp_path = path_with_helpers
    _helper(
        tmp_path,
        "store",
        {"reg.example": {"ServerURL": "reg.example", "Username": "s", "Secret": "from-store"}},
    )
    _helper(
        tmp_path,
        "gcr",
        {"gcr.example": {"ServerURL": "gcr.example", "Username": "<token>", "Secret": "idt"}},
    )
    config = {
        "credsStore": "store",
        "credHelpers": {"gcr.example": "gcr"},
        "auths": {"fallback.example": {"auth": base64.b64encode(b"f:g").decode()}},
    }
    assert auth_from_docker_config("reg.example", config).password == "from-store"
    assert auth_from_docker_config("gcr.example", config).identity_token == "idt"
    # the store has nothing for this host: "credentials not found" falls back to auths
    assert auth_from_docker_config("fallback.example", config).username == "f"


def test_missing_helper_is_a_clear_error(path_with_helpers):
    with pytest.raises(CredentialHelperError, match="docker-credential-absent is not on PATH"):
        auth_from_docker_config("x.example", {"credHelpers": {"x.example": "absent"}})


def test_cr_credentials_blob():
    blob = encode_credentials(
        build_credentials_json("harbor-cr", base="h.example", username="robot$x", password="s3")
    )
    auth, base = auth_from_cr_credentials(blob)
    assert (auth.username, auth.password, base) == ("robot$x", "s3", "h.example")
