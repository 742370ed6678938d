"""engine.io packets and polling payloads (protocol v4, plus the v3 payload format).

Sans-I/O: strings and bytes in, :class:`Packet` values out, and back. A websocket frame holds one
packet; an HTTP long-polling body holds a *payload* of several packets:

* v4 (``EIO=4``): packets separated by the record separator 0x1E; a binary packet in a payload
  is written ``b<base64>``; on a websocket a binary message is the raw bytes.
* v3 (``EIO=3``, accepted by snyk-broker's server with ``allowEIO3``): each packet is prefixed
  with its length and a colon, ``<len>:<packet>``, where the length counts UTF-16 code units
  (JavaScript ``String.length``); a base64 binary packet is ``b<type><base64>``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from shared.protocol_error import ProtocolError

RECORD_SEPARATOR = "\x1e"
DEFAULT_MAX_PAYLOAD = 1_000_000


class PacketType(IntEnum):
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


@dataclass(frozen=True)
class Packet:
    type: PacketType
    data: str | bytes | None = None

    def __post_init__(self) -> None:
        # accept a plain int too, so Packet(4, "x") compares equal to Packet(PacketType.MESSAGE, "x")
        if not isinstance(self.type, PacketType):
            try:
                object.__setattr__(self, "type", PacketType(self.type))
            except ValueError:
                raise ProtocolError(f"unknown engine.io packet type {self.type!r}") from None


def encode_packet(packet: Packet, eio: int = 4) -> str | bytes:
    """Encode one packet for a websocket frame: text packets as ``<digit><data>``.

    Binary data becomes a binary frame: the raw bytes in v4, type byte + bytes in v3.
    """
    if isinstance(packet.data, bytes):
        if eio == 3:
            return bytes([int(packet.type)]) + packet.data
        if packet.type is not PacketType.MESSAGE:
            raise ProtocolError(
                f"engine.io v4 carries binary data only in MESSAGE packets, not {packet.type.name}"
            )
        return packet.data
    return f"{int(packet.type)}{packet.data or ''}"


def _packet_type(char: str) -> PacketType:
    if len(char) == 1 and "0" <= char <= "6":
        return PacketType(int(char))
    raise ProtocolError(f"unknown engine.io packet type {char!r}")


def decode_packet(data: str | bytes, eio: int = 4) -> Packet:
    """Decode one packet (a websocket frame, or one item of a polling payload)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        if eio == 3:
            if not raw:
                raise ProtocolError("empty engine.io binary packet")
            if raw[0] > 6:
                raise ProtocolError(f"unknown engine.io packet type byte {raw[0]}")
            return Packet(PacketType(raw[0]), raw[1:])
        return Packet(PacketType.MESSAGE, raw)
    if not isinstance(data, str):
        raise ProtocolError(f"engine.io packet must be text or bytes, not {type(data).__name__}")
    if not data:
        raise ProtocolError("empty engine.io packet")
    if data[0] == "b":
        if eio == 3:
            ptype = _packet_type(data[1:2])
            return Packet(ptype, _b64decode(data[2:]))
        return Packet(PacketType.MESSAGE, _b64decode(data[1:]))
    ptype = _packet_type(data[0])
    body = data[1:]
    return Packet(ptype, body if body or ptype is PacketType.MESSAGE else None)


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ProtocolError(f"invalid base64 in binary engine.io packet: {exc}") from None


def _payload_item(packet: Packet | str, eio: int) -> str:
    if isinstance(packet, str):
        return packet
    if isinstance(packet.data, bytes):
        encoded = base64.b64encode(packet.data).decode("ascii")
        return f"b{int(packet.type)}{encoded}" if eio == 3 else f"b{encoded}"
    text = encode_packet(packet, eio)
    assert isinstance(text, str)
    return text


def js_length(text: str) -> int:
    """JavaScript ``String.length`` of ``text``: UTF-16 code units (astral characters count 2)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def encode_payload(packets: Iterable[Packet | str], eio: int = 4) -> str:
    """Encode packets for one polling response. A ``str`` item is an already encoded packet."""
    items = [_payload_item(p, eio) for p in packets]
    if eio == 3:
        return "".join(f"{js_length(item)}:{item}" for item in items)
    return RECORD_SEPARATOR.join(items)


def decode_payload(text: str, eio: int = 4) -> list[Packet]:
    """Decode a polling request body into packets; ProtocolError on any malformed part."""
    if not isinstance(text, str):
        raise ProtocolError(f"engine.io payload must be text, not {type(text).__name__}")
    if eio == 3:
        return [decode_packet(item, 3) for item in _split_v3(text)]
    if text == "":
        raise ProtocolError("empty engine.io payload")
    return [decode_packet(item, 4) for item in text.split(RECORD_SEPARATOR)]


def _split_v3(text: str) -> list[str]:
    items: list[str] = []
    pos = 0
    if not text:
        raise ProtocolError("empty engine.io v3 payload")
    while pos < len(text):
        colon = text.find(":", pos)
        digits = text[pos:colon] if colon >= 0 else text[pos:]
        if colon < 0 or not digits.isdigit() or len(digits) > 12:
            raise ProtocolError(
                f"engine.io v3 payload: bad length prefix {digits[:20]!r} at offset {pos}"
            )
        wanted = int(digits)
        start = colon + 1
        # walk code points until `wanted` UTF-16 units are consumed
        end = start
        units = 0
        while units < wanted and end < len(text):
            units += 2 if ord(text[end]) > 0xFFFF else 1
            end += 1
        if units != wanted:
            raise ProtocolError(
                f"engine.io v3 payload: length prefix {wanted} is larger than the remaining body ({units})"
            )
        if wanted:  # engine.io's v3 parser skips empty items ("0:")
            items.append(text[start:end])
        pos = end
    if not items:
        raise ProtocolError("engine.io v3 payload holds no packet")
    return items


@dataclass
class OpenHandshake:
    """The JSON document of the engine.io OPEN packet (field names as on the wire)."""

    sid: str
    upgrades: list[str] = field(default_factory=lambda: ["websocket"])
    pingInterval: int = 25000
    pingTimeout: int = 20000
    maxPayload: int = DEFAULT_MAX_PAYLOAD

    def to_json(self) -> str:
        return json.dumps(
            {
                "sid": self.sid,
                "upgrades": list(self.upgrades),
                "pingInterval": self.pingInterval,
                "pingTimeout": self.pingTimeout,
                "maxPayload": self.maxPayload,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> OpenHandshake:
        try:
            doc: Any = json.loads(text or "")
        except ValueError as exc:
            raise ProtocolError(f"engine.io open packet is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ProtocolError("engine.io open packet is not a JSON object")
        sid = doc.get("sid")
        if not isinstance(sid, str) or not sid:
            raise ProtocolError("engine.io open packet has no sid")
        upgrades = doc.get("upgrades", [])
        if not isinstance(upgrades, list) or not all(isinstance(u, str) for u in upgrades):
            raise ProtocolError("engine.io open packet: upgrades is not a list of strings")
        values: dict[str, int] = {}
        for name, default in (
            ("pingInterval", 25000),
            ("pingTimeout", 20000),
            ("maxPayload", DEFAULT_MAX_PAYLOAD),
        ):
            value = doc.get(name, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ProtocolError(f"engine.io open packet: {name} is not a non-negative integer")
            values[name] = value
        return cls(sid=sid, upgrades=list(upgrades), **values)


def open_packet(handshake: OpenHandshake) -> Packet:
    return Packet(PacketType.OPEN, handshake.to_json())
