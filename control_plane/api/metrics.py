"""Prometheus metrics of the control plane's API (one registry per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from broker_server.metrics import LATENCY_BUCKETS, Labelled


class ApiMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Labelled(
            Counter(
                "control_plane_requests",
                "API requests by route, method and status",
                ["route", "method", "status"],
                registry=self.registry,
            )
        )
        self.latency = Labelled(
            Histogram(
                "control_plane_request_duration_seconds",
                "Time to answer an API request, by route",
                ["route"],
                buckets=LATENCY_BUCKETS,
                registry=self.registry,
            )
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
