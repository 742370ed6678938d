"""Prometheus metrics of the broker client (``GET /metrics`` on its local port).

One registry per client (with the process and Python collectors). Counted where things happen:
requests from the server by outcome and status, their time, callbacks relayed upstream by
status; socket state is read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from broker_client import error_answers
from shared.metrics_registry import service_registry

#: what became of a request the server sent, by the error type the client gave it
OUTCOMES = {
    error_answers.FILTER_BLOCKED: "blocked",
    error_answers.BAD_REQUEST: "refused",
    error_answers.DOWNSTREAM_TIMEOUT: "failed",
    error_answers.DOWNSTREAM_UNREACHABLE: "failed",
    error_answers.DOWNSTREAM_ERROR: "failed",
    error_answers.BODY_TOO_LARGE: "failed",
}


class ClientMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = service_registry()
        self.requests = Counter(
            "broker_client_requests_total",
            "Requests from the server, by outcome (forwarded, blocked, refused, failed) and status",
            ["outcome", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "broker_client_request_seconds",
            "Time from a server request to its answer being sent back",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "broker_client_requests_in_flight",
            "Requests from the server being served now (queued for an agent connection included)",
            registry=self.registry,
        )
        self.callbacks = Counter(
            "broker_client_callbacks_total",
            "Callbacks from the agent relayed upstream, by the status answered",
            ["status"],
            registry=self.registry,
        )
        self.connected = Gauge(
            "broker_client_socket_open",
            "Whether the socket to the broker server is open (1) or not (0), by role",
            ["role"],
            registry=self.registry,
        )

    def watch_socket(self, role: str, is_open: Callable[[], bool]) -> None:
        self.connected.labels(role).set_function(lambda: 1.0 if is_open() else 0.0)

    def served(self, error_type: str | None, status: int, seconds: float) -> None:
        outcome = OUTCOMES.get(error_type or "", "forwarded")
        self.requests.labels(outcome, str(status)).inc()
        self.request_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
