"""A Prometheus registry for one service: its own metrics plus the process and Python ones.

Every service keeps its own registry (tests run several services in one process), so the
standard collectors that ``prometheus_client`` puts only on its global registry are added here:
process CPU, memory and open files, the Python version, and garbage collection.
"""

from __future__ import annotations

from prometheus_client import (
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.registry import CollectorRegistry


def service_registry() -> CollectorRegistry:
    """A fresh registry holding the process, platform and GC collectors."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
