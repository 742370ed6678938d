"""Prometheus metrics of the agent (``GET /metrics``, for local operators).

One registry per app so tests can run several agents in one process. Counted where things
happen: requests by route and status (middleware), scans by outcome (jobs), callbacks by
fate (sender); gauges are read at scrape time from the live objects.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from shared.metrics_registry import service_registry

__all__ = ["CONTENT_TYPE_LATEST", "AgentMetrics"]


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = service_registry()
        self.requests = Counter(
            "cr_agent_requests_total",
            "HTTP requests answered, by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.scans = Counter(
            "cr_agent_scans_total",
            "Image scans finished, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.scan_seconds = Histogram(
            "cr_agent_scan_seconds",
            "Time to scan one image (registry to SBOM)",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
            registry=self.registry,
        )
        self.callbacks = Counter(
            "cr_agent_callbacks_total",
            "Callbacks by fate: delivered, spooled, drained (delivered from the spool)",
            ["fate"],
            registry=self.registry,
        )

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        Gauge(name, doc, registry=self.registry).set_function(read)

    def render(self) -> bytes:
        return generate_latest(self.registry)
