"""Heartbeats with the real snyk-broker client: our server's engine.io pings are answered, the
client's Primus pings are answered, so neither side drops a healthy connection."""

from __future__ import annotations

import json
import time

import pytest

from tests.broker_server.conftest import TOKEN, Backends, start_our_server, upstream_accept
from tests.broker_server.http_calls import call
from tests.support import snyk_broker

pytestmark = pytest.mark.interop


def test_short_heartbeats_keep_the_real_client_connected(backends: Backends, tmp_path):
    snyk_broker.require_snyk_broker()
    # Primus idle limit 1.5 s: the client must ping (every 0.5 s) for its sockets to survive
    server = start_our_server(
        tmp_path,
        accept=upstream_accept(backends.upstream_url),
        SOCKET_PING_INTERVAL="500",
        SOCKET_PING_TIMEOUT="1000",
        PRIMUS_TIMEOUT="1500",
    )
    client = None
    try:
        client = snyk_broker.start_client(
            tmp_path / "snyk",
            token=TOKEN,
            server_url=server.url,
            env={"CR_AGENT_URL": backends.agent_url, "SOCKET_PING_INTERVAL": "500"},
        )
        snyk_broker.wait_for_clients(server.url, TOKEN, 2)
        time.sleep(4)  # several ping intervals in which neither side may close the socket
        assert call(f"{server.url}/broker/{TOKEN}/list")[0] == 200
        events = [
            json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")
        ]
        closed = [e for e in events if e.get("event") == "client socket closed"]
        assert closed == [], closed
        opened = [e for e in events if e.get("event") == "client socket opened"]
        assert len(opened) == 2
        metrics = call(f"{server.url}/metrics")[2].decode()
        counts = {
            kind: float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("broker_server_heartbeats_total{")
            for kind in ("engine_pong", "primus_ping")
            if f'kind="{kind}"' in line
        }
        # 2 sockets x ~4 s: several of each, i.e. both heartbeats really ran
        assert counts.get("engine_pong", 0) >= 6, counts
        assert counts.get("primus_ping", 0) >= 6, counts
    finally:
        if client is not None:
            client.stop()
        server.stop()
