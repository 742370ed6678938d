"""A ClientSocket built from SocketHooks alone, with no server around it, for unit tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from broker_server.budget import Account, ByteBudget
from broker_server.client_socket import ClientSocket, SocketHooks
from broker_server.metrics import ServerMetrics
from broker_server.settings import load_settings
from broker_server.tokens import TokenRegistry

TOKEN = "7b1d3c0e-4a2f-4c55-9e8d-5f0a1b2c3d4e"


def lone_socket(
    *,
    forward: Callable[[str, Any], Awaitable[dict[str, Any]]],
    identified: Callable[[ClientSocket], None],
    closed: Callable[[ClientSocket], None],
    budget: ByteBudget | None = None,
    role_hint: str | None = None,
    sid: str = "s1",
    eio: int = 4,
    transport: str = "polling",
    account: Account | None = None,
) -> ClientSocket:
    """A socket of ``TOKEN``, by default polling engine.io v4 (not started: no heartbeat task)."""
    settings, _rules, tokens = load_settings({"BROKER_TOKENS": TOKEN})
    hooks = SocketHooks(
        settings=settings,
        metrics=ServerMetrics(),
        tokens=TokenRegistry(tokens),
        forward=forward,
        identified=identified,
        transport_changed=lambda: None,
        closed=closed,
    )
    budget = budget or ByteBudget(server=1 << 20, token=1 << 20, connection=1 << 20)
    return ClientSocket(
        hooks,
        account=account or budget.account(TOKEN),
        token=TOKEN,
        sid=sid,
        eio=eio,
        transport=transport,
        role_hint=role_hint,
        client_id_header=None,
    )
