"""Fixtures for broker client tests: the test agent and fake upstream in a background loop,
the real snyk-broker server, and our client as a real subprocess."""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from deploy import stack as st
from shared.credentials import build_credentials_json, encode_credentials
from tests.broker_client.agent import (
    VALID_AUTH_KEY,
    BackgroundApps,
    Recorder,
    agent_app,
    upstream_app,
)
from tests.support import snyk_broker

REPO = st.REPO
CLIENT_BIN = Path(sys.executable).with_name("broker-client")

#: Distinctive secret values: the log scan looks for each of them (and their encodings).
SECRET_USERNAME = "crb-user-7f3a91"
SECRET_PASSWORD = 'S3cr3t"pa\\ss-9b1c'  # a quote and a backslash must survive JSON
SECRET_BASE = "registry.secret-base.example"
#: The CR_CREDENTIALS our test clients build from the values above.
SECRET_BLOB = encode_credentials(
    build_credentials_json(
        "docker-hub", base=SECRET_BASE, username=SECRET_USERNAME, password=SECRET_PASSWORD
    )
)
#: Authorization values the agent's /validate (systemcheck target) accepts.
VALID_AUTH = ("good-cred-1", "good-cred-3", SECRET_BLOB)


@dataclass
class Apps:
    agent: Recorder
    upstream: Recorder
    agent_port: int
    upstream_port: int
    agent_app: web.Application
    background: BackgroundApps

    @property
    def agent_url(self) -> str:
        return f"http://127.0.0.1:{self.agent_port}"

    @property
    def upstream_url(self) -> str:
        return f"http://127.0.0.1:{self.upstream_port}"


@pytest.fixture(scope="module")
def apps() -> Iterator[Apps]:
    background = BackgroundApps()
    agent, upstream = Recorder(), Recorder()
    app = agent_app(agent)
    app[VALID_AUTH_KEY] = VALID_AUTH
    try:
        agent_port = background.serve(app)
        upstream_port = background.serve(upstream_app(upstream))
        yield Apps(agent, upstream, agent_port, upstream_port, app, background)
    finally:
        background.close()


#: our broker client as a running subprocess (``.token``, ``.process``, ``.url``, ...)
OurClient = st.Service

#: the registry settings our test clients carry (the log scan looks for these secrets)
REGISTRY_ENV = {
    "CR_TYPE": "docker-hub",
    "CR_USERNAME": SECRET_USERNAME,
    "CR_PASSWORD": SECRET_PASSWORD,
    "CR_BASE": SECRET_BASE,
}


@contextlib.contextmanager
def behind_snyk_server(
    apps: Apps, workdir: Path, extra: dict[str, str] | None = None
) -> Iterator[tuple[snyk_broker.SnykBroker, OurClient]]:
    """The real snyk-broker server (callbacks to the fake upstream) and our client behind it,
    both sockets connected; stopped on exit."""
    snyk_broker.require_snyk_broker()
    server = snyk_broker.start_server(
        workdir / "server", accept=snyk_broker.server_accept(apps.upstream_url)
    )
    try:
        client = start_our_client(
            workdir, server_url=server.url, agent_url=apps.agent_url, extra=extra
        )
        try:
            snyk_broker.wait_for_clients(server.url, client.token, 2, timeout=20)
            yield server, client
        finally:
            client.stop()
    finally:
        server.stop()


def start_our_client(
    workdir: Path,
    *,
    server_url: str,
    agent_url: str,
    token: str | None = None,
    extra: dict[str, str] | None = None,
    wait: bool = True,
) -> OurClient:
    """Our broker client with debug logs; by default returns once ``/healthcheck`` answers
    at all (200 connected or 500 not yet), since many tests give it no reachable server."""
    return st.start_broker_client(
        workdir,
        token=token or str(uuid.uuid4()),
        server_url=server_url,
        agent_url=agent_url,
        registry=REGISTRY_ENV,
        env={"LOG_LEVEL": "debug", "DEBUG": "true", **(extra or {})},
        validation_path=None,
        startup=st.Startup(timeout=20, ready=(200, 500), wait=wait, log="our-client-{port}.log"),
    )
