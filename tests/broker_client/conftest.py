"""Fixtures for broker client tests: the test agent and fake upstream in a background loop,
the real snyk-broker server, and our client as a real subprocess."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from deploy.processes import ServerProcess, free_port, wait_for_http
from shared.credentials import build_credentials_json, encode_credentials
from tests.broker_client.agent import VALID_AUTH_KEY, Recorder, agent_app, start, upstream_app

REPO = Path(__file__).resolve().parents[2]
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


class BackgroundApps:
    """aiohttp apps served from a thread with its own event loop (tests stay synchronous)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runners: list[web.AppRunner] = []

    def serve(self, app: web.Application) -> int:
        port = free_port()
        runner = asyncio.run_coroutine_threadsafe(start(app, port), self.loop).result(10)
        self.runners.append(runner)
        return port

    def close(self) -> None:
        for runner in self.runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


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


@dataclass
class OurClient:
    process: ServerProcess
    port: int
    token: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.stop()


def client_env(
    *, token: str, server_url: str, agent_url: str, port: int, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(REPO),
        "BROKER_TOKEN": token,
        "BROKER_SERVER_URL": server_url,
        "BROKER_CLIENT_URL": f"http://127.0.0.1:{port}",
        "BROKER_CLIENT_LISTEN_HOST": "127.0.0.1",
        "PORT": str(port),
        "CR_AGENT_URL": agent_url,
        "CR_TYPE": "docker-hub",
        "CR_USERNAME": SECRET_USERNAME,
        "CR_PASSWORD": SECRET_PASSWORD,
        "CR_BASE": SECRET_BASE,
        "LOG_LEVEL": "debug",
        "DEBUG": "true",
        "BROKER_CLIENT_RECONNECT_MAX_DELAY": "2000",
    }
    env.update(extra or {})
    return env


def start_our_client(
    workdir: Path,
    *,
    server_url: str,
    agent_url: str,
    token: str | None = None,
    extra: dict[str, str] | None = None,
    wait: bool = True,
) -> OurClient:
    port = free_port()
    token = token or str(uuid.uuid4())
    env = client_env(
        token=token, server_url=server_url, agent_url=agent_url, port=port, extra=extra
    )
    process = ServerProcess([str(CLIENT_BIN)], env=env, log_path=workdir / f"our-client-{port}.log")
    process.start()
    client = OurClient(process, port, token, env)
    if wait:
        try:
            wait_for_http(f"{client.url}/healthcheck", timeout=20, ok=(200, 500))
        except TimeoutError:
            client.stop()
            raise TimeoutError(
                f"broker-client did not start: {process.log_text()[-2000:]}"
            ) from None
    return client
