"""An agent on a free loopback port, in the test's event loop, with settings per test (fixtures)."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp.test_utils import TestServer

from cr_agent.service.app import SECRET_HEADER, create_app
from cr_agent.service.settings import load_settings
from shared.credentials import build_credentials_json, encode_credentials
from tests.support.registry import RunningRegistry

#: the shared secret every test agent is started with and every test request carries
SECRET = "test-agent-secret-" + secrets.token_hex(8)
SECRET_HEADERS = {SECRET_HEADER: SECRET}

DOCUMENT = json.loads((Path(__file__).resolve().parents[3] / "docs" / "openapi.json").read_text())
_TEMPLATES = sorted(
    (
        (re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "(.*)", re.escape(t)) + "$"), t)
        for t in DOCUMENT["paths"]
    ),
    key=lambda pair: -len(pair[1]),
)


def check_against_openapi(method: str, path: str, status: int, body: Any) -> None:
    """Every answer a test sees must match the schema docs/openapi.json gives for it."""
    bare = path.split("?", 1)[0]
    template = next((t for regex, t in _TEMPLATES if regex.match(bare)), None)
    if template is None:
        return  # no such route: the 404 is the middleware's, not an operation's
    operation = DOCUMENT["paths"][template].get(method.lower())
    assert operation is not None, f"{method} {template} is not documented"
    response = operation["responses"].get(str(status))
    assert response is not None, f"{method} {template} answered {status}, which is not documented"
    schema = {
        **response["content"]["application/json"]["schema"],
        "components": DOCUMENT["components"],
    }
    jsonschema.Draft202012Validator(schema).validate(body)


class Agent:
    """``http`` sends the agent's secret header with every request (as the broker client does)."""

    def __init__(self, server: TestServer, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def app(self) -> Any:
        return self.server.app

    async def get(self, path: str, creds: str | None = None, **kw: Any) -> tuple[int, Any]:
        headers = dict(kw.pop("headers", {}))
        if creds is not None:
            headers["Authorization"] = creds
        async with self.http.get(self.url + path, headers=headers, **kw) as resp:
            body = await resp.json(content_type=None)
        check_against_openapi("GET", path, resp.status, body)
        return resp.status, body

    async def post(self, path: str, body: Any, creds: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": creds} if creds is not None else {}
        async with self.http.post(self.url + path, json=body, headers=headers) as resp:
            answer = await resp.json(content_type=None)
        check_against_openapi("POST", path, resp.status, answer)
        return resp.status, answer


AgentFactory = Callable[..., Awaitable[Agent]]


@pytest.fixture
async def make_agent(tmp_path: Path) -> AsyncIterator[AgentFactory]:
    started: list[tuple[TestServer, aiohttp.ClientSession]] = []

    async def factory(scanner: Any = None, **env: Any) -> Agent:
        values = {
            "SPOOL_DIR": str(tmp_path / "spool"),
            "REGISTRY_TIMEOUT": "5",
            "REQUEST_TIMEOUT": "20",
            "CR_AGENT_SECRET": SECRET,
            # these tests drive the agent directly, each with its own callback receiver; the
            # restriction to BROKER_CLIENT_URL has its own tests (test_upstream_steering.py)
            "CR_AGENT_ALLOW_REQUEST_CALLBACK_URL": "true",
        }
        values.update({k: str(v) for k, v in env.items()})
        app = create_app(load_settings(values), scanner=scanner)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60), headers=SECRET_HEADERS
        )
        started.append((server, http))
        return Agent(server, http)

    yield factory
    for server, http in started:
        await http.close()
        await server.close()


@pytest.fixture
async def agent(make_agent: AgentFactory) -> Agent:
    return await make_agent()


def creds_for(registry: RunningRegistry, cr_type: str = "generic-cr", **extra: Any) -> str:
    """The base64 CR_CREDENTIALS blob the broker client would send for ``registry``."""
    obj = build_credentials_json(
        cr_type,
        base=registry.url,
        username=registry.username or "",
        password=registry.password or "",
    )
    obj.update(extra)
    return encode_credentials(obj)
