"""Primus control strings carried inside engine.io MESSAGE packets.

Primus encodes every message with its parser (EJSON here), so a heartbeat travels as the JSON
*string* ``"primus::ping::<ms>"``. The client pings; the server answers with the same value and
ends a connection that sent nothing for its timeout (35 s by default in Primus).
``primus::server::close`` means the server ended the connection on purpose: do not reconnect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PREFIX = "primus::"
PING_PREFIX = "primus::ping::"
PONG_PREFIX = "primus::pong::"
ID_PREFIX = "primus::id::"
SERVER_CLOSE = "primus::server::close"

ControlKind = Literal["ping", "pong", "server_close", "id"]


@dataclass(frozen=True)
class PrimusControl:
    kind: ControlKind
    value: str = ""


def ping_text(ms: int | str) -> str:
    return f"{PING_PREFIX}{ms}"


def pong_text(ms: int | str) -> str:
    return f"{PONG_PREFIX}{ms}"


def id_text(spark_id: str = "") -> str:
    return f"{ID_PREFIX}{spark_id}"


def parse_control(text: str) -> PrimusControl | None:
    """Recognise a Primus control string; ``None`` for ordinary data (even if it has ``primus::``)."""
    if not isinstance(text, str) or not text.startswith(PREFIX):
        return None
    if text.startswith(PING_PREFIX):
        return PrimusControl("ping", text[len(PING_PREFIX) :])
    if text.startswith(PONG_PREFIX):
        return PrimusControl("pong", text[len(PONG_PREFIX) :])
    if text == SERVER_CLOSE:
        return PrimusControl("server_close")
    if text.startswith(ID_PREFIX):
        return PrimusControl("id", text[len(ID_PREFIX) :])
    return None
