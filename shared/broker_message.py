"""The broker's HTTP messages inside socket events: the ``request`` event and its ack reply.

Both ends of the socket carry HTTP requests and answers as emitter event arguments:

- a ``request`` event: ``{"url", "method", "headers", "streamingID", "requestId", "body"?}``;
- its ack reply: ``{"status", "headers", "body"}`` (extra fields such as ``errorType`` allowed).

A body arrives as EJSON binary (our peers), text, Node's ``Buffer.toJSON()`` shape
(``{"type": "Buffer", "data": [...]}``, what snyk-broker sends for a raw buffer), or any other
JSON value (which travels as its JSON text, as ``JSON.stringify`` makes it). Header values may
be arrays (Node gives repeated headers that way). This module is sans-I/O: dicts in, values
out, and back; the drivers in ``broker_client`` and ``broker_server`` own sockets and HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.protocol_error import ProtocolError

#: Hop-by-hop headers (RFC 9110 7.6.1): they describe one connection, never the message.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
    }
)
#: Headers that describe one HTTP hop's framing: never copied from one side to the other.
FRAMING = HOP_BY_HOP | {"content-length"}
#: What a buffered answer (an ack reply) loses: framing, and the encoding of a body that may have
#: been decoded on the way (the server reads its upstream with aiohttp's auto-decompression).
BUFFERED_DROP = FRAMING | {"content-encoding"}


def header_value(value: Any) -> str:
    """One header's value as text: Node's array of repeated values joined with ``", "``."""
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def request_headers(raw: Mapping[Any, Any]) -> dict[str, str]:
    """A request event's headers: lower-case names, text values, ``None`` values left out."""
    return {str(k).lower(): header_value(v) for k, v in raw.items() if v is not None}


def answer_headers(headers: Any, drop: frozenset[str] = FRAMING) -> dict[str, str]:
    """An answer's headers fit for an HTTP response: names as given, ``drop`` (lower-case
    names) and framing left out, values that would split the header block (CR, LF) left out."""
    if not isinstance(headers, Mapping):
        return {}
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or name.lower() in drop or value is None:
            continue
        text = header_value(value)
        if "\r" in text or "\n" in text:
            continue
        out[name] = text
    return out


def merged_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers of an incoming HTTP request, lower-cased; repeated names joined with ``", "``."""
    out: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def body_bytes(value: Any, where: str = "body") -> bytes:
    """The bytes of a body in any of the shapes the peers send; ``b""`` for none.

    ProtocolError (naming ``where``) for a Buffer shape whose data are not bytes.
    """
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if _is_buffer(value):
        try:
            return bytes(value["data"])
        except (TypeError, ValueError):
            raise ProtocolError(f"{where} Buffer has non-byte data") from None
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _is_buffer(value: Any) -> bool:
    """Node's ``Buffer.toJSON()`` shape."""
    return (
        isinstance(value, dict)
        and value.get("type") == "Buffer"
        and isinstance(value.get("data"), list)
    )


def body_size(value: Any) -> int:
    """Roughly the bytes a body holds, without copying it (its length; a Buffer's list)."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, dict) and isinstance(value.get("data"), list):
        return len(value["data"])
    return 0


# ---------------------------------------------------------------------------------------------
# the request event


@dataclass(frozen=True)
class RequestMessage:
    """A ``request`` event's argument, checked; ``body`` is ``b""`` when there is none."""

    url: str
    method: str
    headers: dict[str, str]
    body: bytes
    streaming_id: str = ""
    request_id: str = ""

    @classmethod
    def from_event(cls, arg: Any) -> RequestMessage:
        """Parse the event argument; ProtocolError naming the bad field."""
        if not isinstance(arg, dict):
            raise ProtocolError("request event argument is not an object")
        url = arg.get("url")
        if not isinstance(url, str) or not url:
            raise ProtocolError("request event has no url")
        method = arg.get("method") or "GET"
        if not isinstance(method, str) or not method.isalpha():
            raise ProtocolError(f"request event has an invalid method {method!r}")
        raw_headers = arg.get("headers") or {}
        if not isinstance(raw_headers, dict):
            raise ProtocolError("request event headers is not an object")
        streaming_id = arg.get("streamingID") or ""
        if not isinstance(streaming_id, str):
            raise ProtocolError("request event streamingID is not a string")
        return cls(
            url=url,
            method=method.upper(),
            headers=request_headers(raw_headers),
            body=body_bytes(arg.get("body"), "request event body"),
            streaming_id=streaming_id,
            request_id=str(arg.get("requestId") or ""),
        )

    def to_event(self) -> dict[str, Any]:
        """The event argument; the body (EJSON binary on the wire) only when there is one."""
        event: dict[str, Any] = {
            "url": self.url,
            "method": self.method,
            "headers": self.headers,
            "streamingID": self.streaming_id,
            "requestId": self.request_id,
        }
        if self.body:
            event["body"] = self.body
        return event


# ---------------------------------------------------------------------------------------------
# the ack reply


@dataclass(frozen=True)
class Reply:
    """An ack reply, checked: a valid status, the raw headers, the body's bytes."""

    status: int
    headers: Mapping[str, Any]
    body: bytes
    #: the body was a JSON value other than text or bytes (it travels as its JSON text)
    json_body: bool = False

    @classmethod
    def from_ack(cls, args: list[Any], default_status: int | None = 200) -> Reply:
        """The first ack argument; ProtocolError when it is not an object with a valid status
        (a missing status is ``default_status``, or invalid when that is None)."""
        answer = args[0] if args else None
        if not isinstance(answer, dict):
            raise ProtocolError("answer is not an object")
        status = answer.get("status", default_status)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise ProtocolError(f"answer has status {status!r}")
        headers = answer.get("headers")
        body = answer.get("body")
        return cls(
            status,
            headers if isinstance(headers, dict) else {},
            body_bytes(body, "answer body"),
            json_body=not (body is None or isinstance(body, str | bytes) or _is_buffer(body)),
        )


def reply(
    status: int, headers: Mapping[str, Any], body: Any, *, body_first: bool = False, **extra: Any
) -> dict[str, Any]:
    """An ack reply argument. ``extra`` fields (``errorType``, ...) follow the three.

    Members are read by name, but each side keeps the order its snyk-broker counterpart
    writes: the server ``status, headers, body``; the client (``body_first``)
    ``status, body, headers`` (protocol reference, 1.4 item 4).
    """
    if body_first:
        return {"status": status, "body": body, "headers": dict(headers), **extra}
    return {"status": status, "headers": dict(headers), "body": body, **extra}


def error_reply(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    """An ack reply carrying a JSON error ``{"code", "message", ...}``."""
    body = json.dumps({"code": code, "message": message, **extra})
    return reply(status, {"content-type": "application/json"}, body)


def declared_length(status: int, headers: Mapping[Any, Any], method: str) -> int | None:
    """An answer's content-length when it may be passed on: a body is expected and it parses."""
    if method == "HEAD" or status < 200 or status in (204, 304):
        return None
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == "content-length":
            text = str(value).strip()
            return int(text) if text.isdigit() and len(text) < 16 else None
    return None
