"""Where a job's callbacks may go: the broker client the agent was configured with.

The upstream writes the ``/scan`` body, so a ``callbackUrl`` in it is the upstream's choice of
destination; followed blindly, it would make the agent POST SBOMs to any host in the customer
network. The agent therefore posts only to its own ``BROKER_CLIENT_URL``. A request may still
name a ``callbackUrl`` (snyk-style bodies do, via ``${BROKER_CLIENT_URL}`` substitution), but
only one that is *the same URL*: the same scheme, the same host (case-insensitive), the same
port (an omitted port being the scheme's default) and the same path (trailing ``/`` ignored),
with no user, query or fragment part. The agent appends its own callback paths to it.
``CR_AGENT_ALLOW_REQUEST_CALLBACK_URL=true`` lifts the restriction for setups where no broker
client stands between upstream and agent.
"""

from __future__ import annotations

import urllib.parse

from cr_agent.service.errors import ApiError

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _key(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path) of a plain http(s) URL; None if it is anything more."""
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    return scheme, parts.hostname.lower(), port, parts.path.rstrip("/")


def same_target(configured: str, given: str) -> bool:
    """True when ``given`` names the configured callback URL (see the module docstring)."""
    mine = _key(configured)
    return mine is not None and _key(given) == mine


def callback_base(configured: str | None, given: str | None, *, allow_request: bool) -> str:
    """The callback base URL a job uses, or a 400 naming ``callbackUrl``."""
    if given is None:
        if configured:
            return configured
        raise ApiError(
            400,
            "invalid-request",
            "no callback URL: the agent has no BROKER_CLIENT_URL setting (the broker "
            "client's BROKER_CLIENT_URL)",
            field="callbackUrl",
        )
    if _key(given) is None:
        raise ApiError(
            400,
            "invalid-request",
            "callbackUrl must be a plain http(s)://host[:port][/path] URL "
            "(no user, query or fragment)",
            field="callbackUrl",
        )
    if allow_request:
        return given.strip().rstrip("/")
    if configured and same_target(configured, given):
        return configured
    raise ApiError(
        400,
        "invalid-request",
        "callbackUrl is not the agent's BROKER_CLIENT_URL: callbacks go only to the broker "
        "client the agent is configured with (leave callbackUrl out, or set "
        "CR_AGENT_ALLOW_REQUEST_CALLBACK_URL=true to let requests choose)",
        field="callbackUrl",
    )
