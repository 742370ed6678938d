"""Prometheus metrics of the broker server (one registry per server instance, so tests can run
several servers in one process)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from shared.metrics_registry import service_registry


class Labelled:
    """A metric whose labelled children are looked up once; ``labels()`` is on every request's path."""

    def __init__(self, metric: Counter | Gauge | Histogram) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = service_registry()
        self.connections = Labelled(
            Gauge(
                "broker_server_connections",
                "Open client sockets by transport and whether they identified",
                ["transport", "state"],
                registry=self.registry,
            )
        )
        self.connections_total = Labelled(
            Counter(
                "broker_server_connections_opened",
                "Client sockets opened, by engine.io protocol version",
                ["eio"],
                registry=self.registry,
            )
        )
        self.requests = Labelled(
            Counter(
                "broker_server_requests",
                "Relayed requests by direction (to_client = /broker/*, to_upstream = client callbacks), mode and status",
                ["direction", "mode", "status"],
                registry=self.registry,
            )
        )
        self.bytes = Labelled(
            Counter(
                "broker_server_bytes",
                "Body bytes relayed, by direction and kind (request/response)",
                ["direction", "kind"],
                registry=self.registry,
            )
        )
        self.latency = Labelled(
            Histogram(
                "broker_server_request_duration_seconds",
                "Time from receiving a relayed request to the start of its answer",
                ["direction", "mode"],
                buckets=LATENCY_BUCKETS,
                registry=self.registry,
            )
        )
        self.heartbeats = Labelled(
            Counter(
                "broker_server_heartbeats",
                "Heartbeats received: engine.io pongs/pings and Primus pings",
                ["kind"],
                registry=self.registry,
            )
        )
        self.faults = Labelled(
            Counter(
                "broker_server_protocol_faults",
                "Malformed input from peers, by where it arrived",
                ["where"],
                registry=self.registry,
            )
        )

        self.refusals = Labelled(
            Counter(
                "broker_server_refusals",
                "Peers refused for their load: scope connections (too many sockets for a token), "
                "connection, token or server (bytes in flight over that limit)",
                ["scope"],
                registry=self.registry,
            )
        )
        self.inflight_bytes = Gauge(
            "broker_server_inflight_bytes",
            "Bytes of peers' messages the server holds now (see BROKER_SERVER_MAX_INFLIGHT_BYTES)",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
