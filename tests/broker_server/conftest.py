"""Fixtures for broker server tests: our server in-process (for scripted peers) or as a real
subprocess (for the real snyk-broker client and our broker client), the test agent and a fake
upstream API in a background event loop."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from broker_server.server import SERVER_KEY, BrokerServer, build_app
from broker_server.settings import load_settings
from deploy import stack as st
from tests.broker_client.agent import BackgroundApps, Recorder, agent_app, upstream_app

TOKEN = "7b1d3c0e-4a2f-4c55-9e8d-5f0a1b2c3d4e"
OTHER_TOKEN = "0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f"


def upstream_accept(upstream_url: str) -> dict[str, Any]:
    return {
        "private": [
            {"method": "POST", "path": "/api/v1/*", "origin": upstream_url},
            {"method": "POST", "path": "/api/v2/*", "origin": upstream_url},
        ],
        "public": [{"method": "any", "path": "/*"}],
    }


@dataclass
class InProcessServer:
    url: str
    server: BrokerServer


ServerFactory = Callable[..., Awaitable[InProcessServer]]


@pytest.fixture
async def make_server(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """Start our server in the test's event loop with extra settings: ``await make_server(X="1")``."""
    started: list[TestServer] = []

    async def factory(*, accept: dict[str, Any] | None = None, **env: str) -> InProcessServer:
        environ = {"BROKER_TOKENS": f"{TOKEN},{OTHER_TOKEN}", "LOG_LEVEL": "debug", **env}
        if accept is not None:
            path = tmp_path / f"accept-{len(started)}.json"
            path.write_text(json.dumps(accept))
            environ["ACCEPT"] = str(path)
        settings, rules, tokens = load_settings(environ)
        # ${NAME} in the rules come from the settings given here, as in a server's own process
        app = build_app(settings, rules, tokens, settings.variables(environ))
        test_server = TestServer(app, host="127.0.0.1")
        await test_server.start_server()
        started.append(test_server)
        return InProcessServer(f"http://127.0.0.1:{test_server.port}", app[SERVER_KEY])

    yield factory
    for test_server in started:
        await test_server.close()


@dataclass
class Backends:
    agent: Recorder
    upstream: Recorder
    agent_url: str
    upstream_url: str
    background: BackgroundApps

    def extra_agent(self) -> tuple[Recorder, str]:
        recorder = Recorder()
        port = self.background.serve(agent_app(recorder))
        return recorder, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def backends() -> Iterator[Backends]:
    background = BackgroundApps()
    agent, upstream = Recorder(), Recorder()
    try:
        agent_port = background.serve(agent_app(agent))
        upstream_port = background.serve(upstream_app(upstream))
        yield Backends(
            agent,
            upstream,
            f"http://127.0.0.1:{agent_port}",
            f"http://127.0.0.1:{upstream_port}",
            background,
        )
    finally:
        background.close()


#: our broker server as a running subprocess (``.url``, ``.restart()``, ``.log_text()``, ...)
OurServer = st.Service


def start_our_server(
    workdir: Path, *, accept: dict[str, Any], tokens: str = TOKEN, **extra: str
) -> OurServer:
    """Our ``broker-server`` on a free loopback port; returns once /healthcheck answers."""
    return st.start_broker_server(
        workdir,
        token=tokens,
        accept=accept,
        env={"LOG_LEVEL": "debug", **extra},
        startup=st.Startup(timeout=20, log="our-server-{port}.log"),
    )
