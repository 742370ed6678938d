"""The shared secret the agent requires (``CR_AGENT_SECRET``), on every request to the agent.

Only the broker client holds it: whatever the server sent under the header name is dropped,
and the secret is added only to requests whose origin is ``CR_AGENT_URL`` (a custom accept
rule or validation URL pointing elsewhere never receives it).
"""

from __future__ import annotations

import urllib.parse

from broker_client.settings import Settings

HEADER = "x-crbroker-agent-secret"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int] | None:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        return None
    return (scheme, (parts.hostname or "").lower(), port) if parts.hostname else None


def add_agent_secret(settings: Settings, url: str, headers: dict[str, str]) -> None:
    """Replace any ``X-Crbroker-Agent-Secret`` in ``headers`` with ours when ``url`` is the agent's."""
    for name in [k for k in headers if k.lower() == HEADER]:
        del headers[name]
    secret, agent = settings.CR_AGENT_SECRET, settings.CR_AGENT_URL
    if secret and agent and _origin(url) is not None and _origin(url) == _origin(agent):
        headers[HEADER] = secret
