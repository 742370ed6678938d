"""primus-emitter packets: named events with optional acknowledgements.

Event: ``{"type": 0, "data": [name, *args]}`` plus ``"id": n`` when the sender wants an ack.
Ack: ``{"type": 1, "id": n, "data": [*args]}``. Each side numbers its own ack ids from 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.protocol_error import ProtocolError

EVENT = 0
ACK = 1


@dataclass(frozen=True)
class Event:
    name: str
    args: list[Any] = field(default_factory=list)
    ack_id: int | None = None


@dataclass(frozen=True)
class Ack:
    ack_id: int
    args: list[Any] = field(default_factory=list)


def encode_event(event: Event) -> dict[str, Any]:
    packet: dict[str, Any] = {"type": EVENT, "data": [event.name, *event.args]}
    if event.ack_id is not None:
        packet["id"] = event.ack_id
    return packet


def encode_ack(ack: Ack) -> dict[str, Any]:
    return {"type": ACK, "id": ack.ack_id, "data": list(ack.args)}


def is_emitter_packet(obj: Any) -> bool:
    """True when ``obj`` looks like an emitter packet (has an integer ``type`` of 0 or 1)."""
    return (
        isinstance(obj, dict)
        and obj.get("type") in (EVENT, ACK)
        and not isinstance(obj.get("type"), bool)
    )


def _ack_id(obj: dict[str, Any], *, required: bool) -> int | None:
    value = obj.get("id")
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(f"emitter packet has an invalid ack id {value!r}")
    return value


def decode(obj: Any) -> Event | Ack:
    """Decode a parsed emitter packet; ProtocolError naming what is wrong."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"emitter packet is not an object but {type(obj).__name__}")
    kind = obj.get("type")
    data = obj.get("data", [])
    if not isinstance(data, list):
        raise ProtocolError("emitter packet data is not an array")
    if kind == EVENT and not isinstance(kind, bool):
        if not data or not isinstance(data[0], str) or not data[0]:
            raise ProtocolError("emitter event has no event name")
        return Event(data[0], list(data[1:]), _ack_id(obj, required=False))
    if kind == ACK and not isinstance(kind, bool):
        ack_id = _ack_id(obj, required=True)
        assert ack_id is not None
        return Ack(ack_id, list(data))
    raise ProtocolError(f"unknown emitter packet type {kind!r}")
