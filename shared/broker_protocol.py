"""The broker connection state machine, for both ends of the socket.

Layers (innermost last): engine.io packet -> MESSAGE text -> EJSON value -> either a Primus
control string or a primus-emitter packet -> broker events (``identify``, ``request``, ...).

:class:`BrokerConnection` is sans-I/O: a driver feeds it each engine.io packet it reads
(:meth:`~BrokerConnection.receive`, or :meth:`~BrokerConnection.receive_payload` for a polling
body) and gets :class:`ProtocolEvent` values back; it asks it for the text of packets to write
(:meth:`~BrokerConnection.send_event`, :meth:`~BrokerConnection.send_ack`, ...). Timers, sockets
and HTTP stay in the driver. Bad input never raises out of ``receive``: it becomes a
:class:`ProtocolFault` event that names what is wrong, and the driver decides what to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from shared import ejson, emitter, primus
from shared.engineio import (
    OpenHandshake,
    Packet,
    PacketType,
    decode_packet,
    decode_payload,
    encode_packet,
)
from shared.protocol_error import ProtocolError

Role = Literal["client", "server"]

# engine.io maxHttpBufferSize / Primus maxLength used by snyk-broker's server (21 MB).
DEFAULT_MAX_MESSAGE_BYTES = 22_020_096
SERVER_CAPABILITIES = ["receive-post-streams"]
CLIENT_CAPABILITIES = ["post-streams"]


# ---------------------------------------------------------------------------------------------
# events


@dataclass(frozen=True)
class Opened:
    """The engine.io OPEN packet (client side)."""

    handshake: OpenHandshake


@dataclass(frozen=True)
class EnginePing:
    data: str | None = None  # "probe" during a websocket upgrade


@dataclass(frozen=True)
class EnginePong:
    data: str | None = None


@dataclass(frozen=True)
class Upgraded:
    """The client finished a transport upgrade (engine.io ``5``); the server switches to it."""


@dataclass(frozen=True)
class Noop:
    pass


@dataclass(frozen=True)
class PrimusPing:
    value: str


@dataclass(frozen=True)
class PrimusPong:
    value: str


@dataclass(frozen=True)
class PrimusIdQuery:
    value: str = ""


@dataclass(frozen=True)
class ServerClose:
    """``primus::server::close``: the server ended the connection on purpose; do not reconnect."""


@dataclass(frozen=True)
class ClientMetadata:
    """What a client tells about itself in ``identify`` (server side)."""

    version: str | None = None
    capabilities: list[str] | None = None
    filters: dict[str, Any] | None = None
    role: str | None = None
    client_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """snyk-broker routes traffic only to sockets with both version and capabilities."""
        return self.version is not None and self.capabilities is not None

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ClientMetadata:
        version = doc.get("version")
        if version is not None and not isinstance(version, str):
            raise ProtocolError("identify metadata.version is not a string")
        capabilities = doc.get("capabilities")
        if capabilities is not None and (
            not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities)
        ):
            raise ProtocolError("identify metadata.capabilities is not a list of strings")
        filters = doc.get("filters")
        if filters is not None and not isinstance(filters, dict):
            raise ProtocolError("identify metadata.filters is not an object")
        role = doc.get("role")
        client_id = doc.get("clientId")
        return cls(
            version=version,
            capabilities=capabilities,
            filters=filters,
            role=role if isinstance(role, str) else None,
            client_id=client_id if isinstance(client_id, str) else None,
            raw=doc,
        )


@dataclass(frozen=True)
class ClientIdentified:
    """Server side: the client's ``identify``. ``legacy`` = a pre-4.27 client sent a bare token."""

    token: str
    metadata: ClientMetadata
    legacy: bool = False


@dataclass(frozen=True)
class ServerIdentified:
    """Client side: the server's ``identify`` with its capabilities."""

    capabilities: list[str]


@dataclass(frozen=True)
class EventReceived:
    event: emitter.Event


@dataclass(frozen=True)
class AckReceived:
    ack: emitter.Ack


@dataclass(frozen=True)
class DataReceived:
    """A Primus message that is neither a control string nor an emitter packet."""

    value: Any


@dataclass(frozen=True)
class Closed:
    reason: str


@dataclass(frozen=True)
class ProtocolFault:
    message: str


ProtocolEvent = (
    Opened
    | EnginePing
    | EnginePong
    | Upgraded
    | Noop
    | PrimusPing
    | PrimusPong
    | PrimusIdQuery
    | ServerClose
    | ClientIdentified
    | ServerIdentified
    | EventReceived
    | AckReceived
    | DataReceived
    | Closed
    | ProtocolFault
)


# ---------------------------------------------------------------------------------------------
# versions

_SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


def parse_semver(text: str) -> tuple[int, int, int, tuple[Any, ...]]:
    """(major, minor, patch, prerelease key); ProtocolError when ``text`` is not semver."""
    match = _SEMVER.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ProtocolError(f"client version {text!r} is not a semantic version")
    pre = match.group(4)
    # a release sorts after all of its pre-releases
    pre_key: tuple[Any, ...] = (1,)
    if pre:
        pre_key = (
            0,
            *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")),
        )
    return int(match.group(1)), int(match.group(2)), int(match.group(3)), pre_key


def version_below(version: str, minimum: str) -> bool:
    """True when ``version`` < ``minimum``; ``"local"`` (an unversioned build) never is."""
    if version == "local" or minimum == "local":
        return False
    return parse_semver(version) < parse_semver(minimum)


# ---------------------------------------------------------------------------------------------
# the connection


class BrokerConnection:
    """One broker socket seen from ``role`` ("client" or "server")."""

    def __init__(
        self,
        role: Role,
        *,
        eio: int = 4,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        if role not in ("client", "server"):
            raise ValueError(f"role must be 'client' or 'server', not {role!r}")
        if eio not in (3, 4):
            raise ValueError(f"engine.io protocol {eio} is not supported (3 or 4)")
        self.role: Role = role
        self.eio = eio
        self.max_message_bytes = max_message_bytes
        self.handshake: OpenHandshake | None = None
        self.closed = False
        self.server_closed = False
        self.identity: ClientIdentified | None = None
        self.server_capabilities: list[str] | None = None
        self._next_ack_id = 1
        self._awaiting_acks: set[int] = set()
        self._owed_acks: set[int] = set()

    # -- outgoing -------------------------------------------------------------------------

    def _packet(self, ptype: PacketType, data: str | None = None) -> str:
        text = encode_packet(Packet(ptype, data), self.eio)
        assert isinstance(text, str)
        return text

    def open(self, handshake: OpenHandshake) -> str:
        """Server side: the OPEN packet that starts the session."""
        self.handshake = handshake
        return self._packet(PacketType.OPEN, handshake.to_json())

    def engine_ping(self, data: str | None = None) -> str:
        return self._packet(PacketType.PING, data)

    def close_packet(self) -> str:
        self.closed = True
        return self._packet(PacketType.CLOSE)

    def noop(self) -> str:
        return self._packet(PacketType.NOOP)

    def upgrade(self) -> str:
        """Client side: finish a websocket upgrade after the probe pong."""
        return self._packet(PacketType.UPGRADE)

    def send_data(self, value: Any) -> str:
        """A Primus ``write(value)``: engine.io MESSAGE with the EJSON text of ``value``."""
        return self._packet(PacketType.MESSAGE, ejson.dumps(value))

    def send_event(self, name: str, *args: Any, want_ack: bool = False) -> tuple[str, int | None]:
        """An emitter event; with ``want_ack`` the returned id is awaited by :meth:`receive`."""
        ack_id: int | None = None
        if want_ack:
            ack_id = self._next_ack_id
            self._next_ack_id += 1
            self._awaiting_acks.add(ack_id)
        packet = emitter.encode_event(emitter.Event(name, list(args), ack_id))
        return self.send_data(packet), ack_id

    def send_ack(self, ack_id: int, *args: Any) -> str:
        """Answer an event that asked for an ack; ProtocolError if that id is not owed."""
        if ack_id not in self._owed_acks:
            raise ProtocolError(f"no event with ack id {ack_id} is waiting for an answer")
        self._owed_acks.discard(ack_id)
        return self.send_data(emitter.encode_ack(emitter.Ack(ack_id, list(args))))

    def forget_ack(self, ack_id: int) -> None:
        """Stop waiting for an ack (the driver timed out); a late ack is then a fault."""
        self._awaiting_acks.discard(ack_id)

    @property
    def awaiting_acks(self) -> frozenset[int]:
        return frozenset(self._awaiting_acks)

    def primus_ping(self, now_ms: int) -> str:
        return self.send_data(primus.ping_text(now_ms))

    def server_close(self) -> str:
        """Server side: tell the client not to reconnect (send, then close the transport)."""
        return self.send_data(primus.SERVER_CLOSE)

    def pong_for(self, ping: EnginePing | PrimusPing) -> str:
        """The answer to a ping event of either layer."""
        if isinstance(ping, EnginePing):
            return self._packet(PacketType.PONG, ping.data)
        return self.send_data(primus.pong_text(ping.value))

    # -- incoming -------------------------------------------------------------------------

    def receive(self, data: str | bytes) -> list[ProtocolEvent]:
        """Events for one engine.io packet (a websocket frame)."""
        size = len(data)
        if size > self.max_message_bytes:
            return [
                ProtocolFault(
                    f"message of {size} bytes exceeds the limit of {self.max_message_bytes} bytes"
                )
            ]
        try:
            packet = decode_packet(data, self.eio)
        except ProtocolError as exc:
            return [ProtocolFault(str(exc))]
        return self._handle(packet)

    def receive_payload(self, text: str) -> list[ProtocolEvent]:
        """Events for a long-polling request body (several packets)."""
        if len(text) > self.max_message_bytes:
            return [
                ProtocolFault(
                    f"payload of {len(text)} characters exceeds the limit of {self.max_message_bytes}"
                )
            ]
        try:
            packets = decode_payload(text, self.eio)
        except ProtocolError as exc:
            return [ProtocolFault(str(exc))]
        events: list[ProtocolEvent] = []
        for packet in packets:
            events.extend(self._handle(packet))
        return events

    def _handle(self, packet: Packet) -> list[ProtocolEvent]:
        data = packet.data
        text = data if isinstance(data, str) else None
        match packet.type:
            case PacketType.OPEN:
                if self.role == "server":
                    return [ProtocolFault("a client must not send an engine.io OPEN packet")]
                try:
                    self.handshake = OpenHandshake.from_json(text)
                except ProtocolError as exc:
                    return [ProtocolFault(str(exc))]
                return [Opened(self.handshake)]
            case PacketType.CLOSE:
                self.closed = True
                return [Closed("peer sent engine.io CLOSE")]
            case PacketType.PING:
                return [EnginePing(text)]
            case PacketType.PONG:
                return [EnginePong(text)]
            case PacketType.UPGRADE:
                if self.role == "client":
                    return [ProtocolFault("a server must not send an engine.io UPGRADE packet")]
                return [Upgraded()]
            case PacketType.NOOP:
                return [Noop()]
            case PacketType.MESSAGE:
                return self._message(data)
        return [
            ProtocolFault(f"unexpected engine.io packet type {packet.type!r}")
        ]  # pragma: no cover

    def _message(self, data: str | bytes | None) -> list[ProtocolEvent]:
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                return [ProtocolFault("binary message is not UTF-8 EJSON text")]
        if not data:
            return [ProtocolFault("empty engine.io MESSAGE packet")]
        try:
            value = ejson.loads(data)
        except ProtocolError as exc:
            return [ProtocolFault(str(exc))]
        if isinstance(value, str):
            return [self._control(value)]
        if emitter.is_emitter_packet(value):
            try:
                decoded = emitter.decode(value)
            except ProtocolError as exc:
                return [ProtocolFault(str(exc))]
            if isinstance(decoded, emitter.Ack):
                return [self._ack(decoded)]
            return [self._event(decoded)]
        return [DataReceived(value)]

    def _control(self, text: str) -> ProtocolEvent:
        control = primus.parse_control(text)
        if control is None:
            return DataReceived(text)
        if control.kind == "ping":
            return PrimusPing(control.value)
        if control.kind == "pong":
            return PrimusPong(control.value)
        if control.kind == "server_close":
            if self.role == "server":
                return ProtocolFault("a client must not send primus::server::close")
            self.server_closed = True
            return ServerClose()
        return PrimusIdQuery(control.value)

    def _ack(self, ack: emitter.Ack) -> ProtocolEvent:
        if ack.ack_id not in self._awaiting_acks:
            return ProtocolFault(f"ack for unknown id {ack.ack_id}")
        self._awaiting_acks.discard(ack.ack_id)
        return AckReceived(ack)

    def _event(self, event: emitter.Event) -> ProtocolEvent:
        if event.ack_id is not None:
            if event.ack_id in self._owed_acks:
                return ProtocolFault(
                    f"event {event.name!r} reuses ack id {event.ack_id} that is still unanswered"
                )
            self._owed_acks.add(event.ack_id)
        if event.name == "identify":
            return self._identify(event)
        return EventReceived(event)

    def _identify(self, event: emitter.Event) -> ProtocolEvent:
        arg = event.args[0] if event.args else None
        if self.role == "client":
            capabilities: Any = arg.get("capabilities", []) if isinstance(arg, dict) else []
            if not isinstance(capabilities, list) or not all(
                isinstance(c, str) for c in capabilities
            ):
                return ProtocolFault("server identify: capabilities is not a list of strings")
            self.server_capabilities = capabilities
            return ServerIdentified(capabilities)
        if isinstance(arg, str):
            if not arg:
                return ProtocolFault("identify without token")
            self.identity = ClientIdentified(arg, ClientMetadata(), legacy=True)
            return self.identity
        if not isinstance(arg, dict):
            return ProtocolFault("identify argument is not an object")
        token = arg.get("token")
        if not isinstance(token, str) or not token:
            return ProtocolFault("identify without token")
        raw_metadata = arg.get("metadata")
        if raw_metadata is None:
            raw_metadata = {}
        if not isinstance(raw_metadata, dict):
            return ProtocolFault("identify metadata is not an object")
        try:
            metadata = ClientMetadata.from_dict(raw_metadata)
        except ProtocolError as exc:
            return ProtocolFault(str(exc))
        self.identity = ClientIdentified(token, metadata)
        return self.identity
