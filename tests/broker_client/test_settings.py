"""Settings: snyk-broker's variable names, one-line errors, CR_CREDENTIALS, proxies, secrets."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from broker_client.settings import CLIENT_VERSION, SettingsError, load_settings
from shared.credentials import decode_credentials
from tests.broker_client.conftest import CLIENT_BIN, REPO

BASE = {
    "BROKER_TOKEN": "0F1E2D3C-aaaa-4bbb-8ccc-123456789abc",
    "CR_AGENT_URL": "http://127.0.0.1:8081",
}


#: a registry for tests about other settings (the client refuses to start without one)
REGISTRY = {"CR_TYPE": "docker-hub", "CR_USERNAME": "u", "CR_PASSWORD": "p"}


def load(**env: str):
    registry = {} if {"CR_TYPE", "CR_CREDENTIALS"} & set(env) else REGISTRY
    return load_settings({**BASE, **registry, **env})


def test_defaults_follow_snyk_broker() -> None:
    settings, rules = load()
    assert settings.PORT == 7341
    assert settings.BROKER_SERVER_URL == "https://broker.snyk.io"
    assert settings.BROKER_HEALTHCHECK_PATH == "/healthcheck"
    assert settings.BROKER_SYSTEMCHECK_PATH == "/systemcheck"
    assert settings.MAX_RETRY == 3
    assert (settings.SOCKET_PING_INTERVAL, settings.SOCKET_PONG_TIMEOUT) == (25000, 10000)
    assert settings.SOCKET_MAX_RESPONSE_LENGTH == 20971520
    assert settings.BROKER_TOKEN == BASE["BROKER_TOKEN"].lower()  # the server lower-cases it
    assert len(rules.private) == 11 and len(rules.public) == 8  # the shipped CRA rules


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BROKER_TOKEN": ""}, "BROKER_TOKEN: required, not set"),
        ({"BROKER_TOKEN": "a/b"}, "BROKER_TOKEN: must be a non-empty token"),
        ({"PORT": "http"}, "PORT: Input should be a valid integer"),
        ({"PORT": "70000"}, "PORT: Input should be less than or equal to 65535"),
        (
            {"BROKER_SERVER_URL": "broker.example"},
            "BROKER_SERVER_URL: must be an http:// or https:// URL",
        ),
        ({"CR_AGENT_URL": "ftp://x"}, "CR_AGENT_URL: must be an http:// or https:// URL"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL: unknown log level 'loud'"),
        ({"MAX_RETRY": "-1"}, "MAX_RETRY: Input should be greater than or equal to 0"),
        ({"SOCKET_PING_INTERVAL": "0"}, "SOCKET_PING_INTERVAL: Input should be greater than 0"),
        (
            {"NODE_EXTRA_CA_CERTS": "/nonexistent/ca.pem"},
            "NODE_EXTRA_CA_CERTS: file /nonexistent/ca.pem does not exist",
        ),
        ({"HTTPS_CERT": __file__}, "HTTPS_KEY: required together with HTTPS_CERT"),
        ({"HTTPS_PROXY": "socks5://p:1"}, "HTTPS_PROXY: must be an http:// or https:// proxy URL"),
        ({"BROKER_HEALTHCHECK_PATH": "health"}, "BROKER_HEALTHCHECK_PATH: must start with '/'"),
        ({"CR_TYPE": "ecr"}, "CR_ROLE_ARN and CR_REGION required when CR_TYPE=ecr"),
        ({"CR_TYPE": "digitalocean-cr"}, "CR_TOKEN required when CR_TYPE=digitalocean-cr"),
        (
            {"CR_TYPE": "harbor-cr", "CR_BASE": "harbor.example", "CR_USERNAME": "u"},
            "CR_PASSWORD required when CR_TYPE=harbor-cr",
        ),
        ({"CR_TYPE": "dockerhub"}, "CR_TYPE: unknown registry type 'dockerhub'; use one of acr,"),
        (
            {"CR_TYPE": "generic-cr", "CR_USERNAME": "u", "CR_PASSWORD": "p"},
            "CR_BASE required when CR_TYPE=generic-cr",
        ),
        ({"CR_TYPE": "harbor-cr"}, "CR_BASE required when CR_TYPE=harbor-cr"),
        ({"CR_CREDENTIALS": "not base64!"}, "CR_CREDENTIALS: credentials"),
        (
            {"ACCEPT": "/nonexistent/accept.json"},
            "ACCEPT: cannot read accept rules /nonexistent/accept.json",
        ),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(**env)
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_cr_agent_url_required_by_default_rules() -> None:
    with pytest.raises(SettingsError, match=r"^CR_AGENT_URL: required"):
        load_settings({"BROKER_TOKEN": "t0ken"})


def test_a_registry_is_required_by_default_rules() -> None:
    with pytest.raises(SettingsError, match=r"^CR_TYPE: required \(or CR_CREDENTIALS\)"):
        load_settings(BASE)
    # the legacy names snyk's old docs used still work
    settings, _ = load(CR_TYPE="DockerHub", CR_USERNAME="u", CR_PASSWORD="p")
    assert settings.CR_TYPE == "docker-hub"


def test_accept_rules_file_errors_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "accept.json"
    bad.write_text('{"private": [{"path": "/x", "auth": {"scheme": "nope"}}]}')
    with pytest.raises(SettingsError, match=r"^ACCEPT: private rule #0: 'auth.scheme'"):
        load(ACCEPT=str(bad))


def test_credentials_built_with_real_json_escaping() -> None:
    settings, _ = load(
        CR_TYPE="docker-hub", CR_USERNAME="u", CR_PASSWORD='p"a\\ss', CR_BASE="reg.example"
    )
    assert settings.CR_CREDENTIALS is not None
    raw = base64.b64decode(settings.CR_CREDENTIALS)
    assert raw.endswith(b"\n")
    assert json.loads(raw) == {
        "type": "docker-hub",
        "username": "u",
        "password": 'p"a\\ss',
        "registryBase": "reg.example",
    }


def test_credentials_for_ecr_and_digitalocean() -> None:
    ecr, _ = load(
        CR_TYPE="ecr",
        CR_ROLE_ARN="arn:aws:iam::1:role/r",
        CR_REGION="eu-west-1",
        CR_EXTERNAL_ID="x1",
    )
    assert json.loads(base64.b64decode(ecr.CR_CREDENTIALS or "")) == {
        "type": "ecr",
        "roleArn": "arn:aws:iam::1:role/r",
        "extra": {"region": "eu-west-1", "externalId": "x1"},
    }
    do, _ = load(
        CR_TYPE="digitalocean-cr", CR_TOKEN="dop_v1_abc", CR_BASE="registry.digitalocean.com"
    )
    creds = decode_credentials(do.CR_CREDENTIALS or "")
    assert (creds.username, creds.password) == ("dop_v1_abc", "dop_v1_abc")


def test_given_cr_credentials_is_kept() -> None:
    blob = base64.b64encode(b'{"type":"gcr","username":"_json_key","password":"{}"}').decode()
    settings, _ = load(CR_CREDENTIALS=blob, CR_TYPE="docker-hub", CR_USERNAME="x", CR_PASSWORD="y")
    assert settings.CR_CREDENTIALS == blob


def test_secret_values_cover_credentials_but_not_addresses() -> None:
    settings, _ = load(
        CR_TYPE="docker-hub",
        CR_USERNAME="user-x1",
        CR_PASSWORD="pass-y2",
        CR_BASE="reg.example",
        BROKER_CLIENT_VALIDATION_BASIC_AUTH_POOL="a:b-1,c:d-2",
        HTTPS_PROXY="http://proxyuser:proxypass@127.0.0.1:3128",
    )
    secrets = settings.secret_values()
    for value in (
        settings.BROKER_TOKEN,
        "user-x1",
        "pass-y2",
        settings.CR_CREDENTIALS,
        "a:b-1",
        "c:d-2",
        "proxypass",
    ):
        assert value in secrets
    # host names are not secrets: logs must be able to say which registry or agent failed
    for address in ("reg.example", settings.CR_AGENT_URL):
        assert not any(address in value for value in secrets if value != settings.CR_CREDENTIALS)


def test_proxy_selection_honours_no_proxy() -> None:
    settings, _ = load(
        HTTPS_PROXY="http://proxy:3128",
        HTTP_PROXY="http://proxy:8080",
        NO_PROXY="localhost,.internal,10.0.0.1:8081",
    )
    assert settings.proxy_for("https://broker.snyk.io/primus") == "http://proxy:3128"
    assert settings.proxy_for("wss://broker.snyk.io/primus") == "http://proxy:3128"
    assert settings.proxy_for("http://agent:8081/list") == "http://proxy:8080"
    assert settings.proxy_for("http://cra.internal/list") is None
    assert settings.proxy_for("http://localhost:1/x") is None
    assert settings.proxy_for("http://10.0.0.1:8081/x") is None
    assert settings.proxy_for("http://10.0.0.1:9000/x") == "http://proxy:8080"


def test_lower_case_proxy_variables_are_read() -> None:
    settings, _ = load_settings({**BASE, **REGISTRY, "https_proxy": "http://p:1", "no_proxy": "*"})
    assert settings.HTTPS_PROXY == "http://p:1"
    assert settings.proxy_for("https://x") is None


def test_validation_credentials_follow_snyk_precedence(tmp_path: Path) -> None:
    settings, _ = load(
        BROKER_CLIENT_VALIDATION_AUTHORIZATION_HEADER_POOL="token a,token b",
        BROKER_CLIENT_VALIDATION_BASIC_AUTH="u:p",
    )
    assert settings.validation_credentials() == ["token a", "token b"]
    basic, _ = load(BROKER_CLIENT_VALIDATION_BASIC_AUTH="u:p")
    assert basic.validation_credentials() == ["Basic " + base64.b64encode(b"u:p").decode()]
    cra, _ = load(CR_TYPE="docker-hub", CR_USERNAME="u", CR_PASSWORD="p")
    assert cra.validation_credentials() == [cra.CR_CREDENTIALS]
    # rules that never reach the agent need no registry
    accept = tmp_path / "accept.json"
    accept.write_text('{"private": [{"path": "/x", "origin": "http://127.0.0.1:1"}]}')
    none, _ = load_settings({**BASE, "ACCEPT": str(accept)})
    assert none.validation_credentials() == [None]


def test_wire_version_is_semver_at_or_above_the_recommended_minimum() -> None:
    from shared.broker_protocol import version_below

    assert not version_below(CLIENT_VERSION, "4.182.0")
    assert not version_below(CLIENT_VERSION, "4.209.0")  # service channel enabled
    assert not version_below(CLIENT_VERSION, "5.22.14")  # build metadata does not lower precedence


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"BROKER_TOKEN": ""}, "BROKER_TOKEN"),
        ({"PORT": "x"}, "PORT"),
        ({"CR_TYPE": "ecr"}, "CR_ROLE_ARN"),
        # issue 10 item 11: no registry, an unknown type, generic-cr without its address
        ({}, "CR_TYPE: required (or CR_CREDENTIALS)"),
        ({"CR_TYPE": "quay"}, "CR_TYPE: unknown registry type 'quay'"),
        (
            {"CR_TYPE": "generic-cr", "CR_USERNAME": "u", "CR_PASSWORD": "p"},
            "CR_BASE required when CR_TYPE=generic-cr",
        ),
    ],
)
def test_cli_exits_2_with_one_line_and_no_traceback(env: dict[str, str], needle: str) -> None:
    full = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **BASE, **env}
    result = subprocess.run([str(CLIENT_BIN)], env=full, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_cli_multi_line_parser_errors_still_print_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "accept.yaml"
    bad.write_text("private:\n  - path: [unclosed\n    method: GET\n")
    full = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **BASE, "ACCEPT": str(bad)}
    result = subprocess.run([str(CLIENT_BIN)], env=full, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "ACCEPT:" in lines[0], result.stderr
