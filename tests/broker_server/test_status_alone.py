"""StatusEndpoints on its own: built from a token registry, a connection pool and metrics, no
BrokerServer. Its handlers are served by a bare aiohttp app on 127.0.0.1; the clients are real
ClientSockets that identified through the protocol core."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from broker_server.client_socket import ClientSocket
from broker_server.metrics import ServerMetrics
from broker_server.pool import ConnectionPool
from broker_server.status import StatusEndpoints
from broker_server.tokens import TokenRegistry
from deploy.processes import free_port
from shared import broker_protocol as bp
from shared.redaction import hash_token, mask_token
from shared.version import package_version
from tests.broker_server.lone_socket import TOKEN, lone_socket
from tests.broker_server.peer import identify_payload

OTHER_TOKEN = "0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f"


async def no_forward(token: str, request: object) -> dict:
    raise AssertionError("status endpoints never make a socket call the upstream")


@dataclass
class Status:
    url: str
    pool: ConnectionPool
    metrics: ServerMetrics

    async def identified(self, client_id: str, role: str, version: str) -> ClientSocket:
        socket = lone_socket(
            forward=no_forward, identified=self.pool.register, closed=self.pool.remove
        )
        self.pool.add_handshaking(socket)
        data, _ = bp.BrokerConnection("client").send_event(
            "identify", identify_payload(TOKEN, version=version, role=role, client_id=client_id)
        )
        await socket.handle(socket.conn.receive(data))
        assert socket.identity is not None
        return socket


@pytest.fixture
async def status() -> AsyncIterator[Status]:
    pool, metrics = ConnectionPool(60.0), ServerMetrics()
    endpoints = StatusEndpoints(
        tokens=TokenRegistry([TOKEN, OTHER_TOKEN]), clients=pool, metrics=metrics
    )
    app = web.Application()
    app.router.add_get("/connection-status/{token}", endpoints.connection_status)
    app.router.add_get("/connections-status", endpoints.connections_status)
    app.router.add_get("/healthcheck", endpoints.healthcheck)
    app.router.add_get("/metrics", endpoints.metrics)
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    yield Status(f"http://127.0.0.1:{server.port}", pool, metrics)
    await server.close()


async def get(url: str) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def test_connection_status_lists_the_tokens_identified_clients_newest_first(
    status: Status,
) -> None:
    await status.identified("c1", "primary", "4.200.0")
    await status.identified("c2", "secondary", "4.201.0")
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{status.url}/connection-status/{TOKEN.upper()}") as resp,
    ):
        assert resp.status == 200
        answer = await resp.json()
    assert answer["ok"] is True
    assert [(c["version"], c["role"], c["transport"]) for c in answer["clients"]] == [
        ("4.201.0", "secondary", "polling"),
        ("4.200.0", "primary", "polling"),
    ]
    first = answer["clients"][0]
    assert first["capabilities"] == ["post-streams"]
    assert first["filters"] == {"public": [], "private": [{"method": "GET", "path": "/*"}]}


async def test_connection_status_is_404_without_a_client_or_for_an_unknown_token(
    status: Status,
) -> None:
    await status.identified("c1", "primary", "4.200.0")
    for token in (OTHER_TOKEN, "not-a-token-of-this-server"):
        code, headers, body = await get(f"{status.url}/connection-status/{token}")
        assert (code, headers["x-broker-failure"]) == (404, "no-connection")
        assert '"ok": false' in body


async def test_connections_status_names_tokens_only_masked_and_hashed(status: Status) -> None:
    await status.identified("c1", "primary", "4.200.0")
    await status.identified("c2", "secondary", "4.201.0")
    code, _, body = await get(f"{status.url}/connections-status")
    assert code == 200
    assert TOKEN not in body
    assert json.loads(body) == [
        {
            "identifier": mask_token(TOKEN),
            "hashedIdentifier": hash_token(TOKEN),
            "versions": ["4.200.0", "4.201.0"],
            "brokerClientIds": ["c1", "c2"],
        }
    ]


async def test_healthcheck_and_the_given_metrics(status: Status) -> None:
    code, _, body = await get(f"{status.url}/healthcheck")
    assert code == 200
    assert f'"version": "{package_version()}"' in body
    status.metrics.faults.labels("websocket").inc(3)
    code, headers, body = await get(f"{status.url}/metrics")
    assert code == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert 'broker_server_protocol_faults_total{where="websocket"} 3.0' in body
