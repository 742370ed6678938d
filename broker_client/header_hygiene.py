"""Which headers cross the broker, in each direction (protocol reference, section 1.6)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.broker_message import BUFFERED_DROP, HOP_BY_HOP, answer_headers

#: Never forwarded to the downstream: the server side's routing and correlation data, and
#: headers that make a server or framework behind the agent re-route the request or change
#: its method (the upstream has no business setting them; ``X-Forwarded-*`` and
#: ``Forwarded`` are dropped by prefix below). ``host`` is dropped so the HTTP client writes
#: the agent's own.
DROPPED_DOWNSTREAM = frozenset(
    {
        "forwarded",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-url",
        "x-rewrite-url",
        "x-original-host",
        "x-host",
        "content-length",
        "host",
        "snyk-acting-group-public-id",
        "snyk-acting-org-public-id",
        "snyk-acting-user-public-id",
        "snyk-flow-name",
        "snyk-product-line",
        "snyk-project-type",
        "snyk-integration-type",
        "x-snyk-broker-context-id",
    }
)


def downstream_headers(headers: Mapping[str, str], *, user_agent: str) -> dict[str, str]:
    """Headers for the request to the agent, from the headers the server relayed."""
    out: dict[str, str] = {}
    for key, value in headers.items():
        name = key.lower()
        if name in DROPPED_DOWNSTREAM or name in HOP_BY_HOP or name.startswith("x-forwarded-"):
            continue
        out[name] = value
    if "snyk-request-id" in out:
        out["x-request-id"] = out["snyk-request-id"]
    if "user-agent" in out:
        out["x-broker-origin-ua"] = out.pop("user-agent")
    out["user-agent"] = user_agent
    out["connection"] = "Keep-Alive"
    out["keep-alive"] = "timeout=60, max=1000"
    return out


def response_headers(items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Downstream response headers for the stream head; repeated names become lists."""
    out: dict[str, Any] = {}
    for key, value in items:
        name = key.lower()
        if name in HOP_BY_HOP:
            continue
        if name in out:
            existing = out[name]
            out[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            out[name] = value
    return out


def relay_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """Headers of a server answer (ack) for the local caller: framing is ours to set."""
    kept = answer_headers(headers, drop=BUFFERED_DROP)
    return {name.lower(): value for name, value in kept.items()}
