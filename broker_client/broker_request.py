"""A ``request`` event from the server, as a value: what the Snyk side asked for."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from shared.protocol_error import ProtocolError

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_CTX_PREFIX = re.compile(
    r"^/ctx/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I
)


@dataclass
class BrokerRequest:
    url: str
    method: str
    headers: dict[str, str]
    body: bytes | None
    streaming_id: str
    request_id: str

    @property
    def wants_stream(self) -> bool:
        return bool(self.streaming_id)

    @classmethod
    def from_event(cls, arg: Any) -> BrokerRequest:
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
        headers: dict[str, str] = {}
        for key, value in raw_headers.items():
            if value is None:
                continue
            # Node gives repeated headers as arrays
            headers[str(key).lower()] = (
                ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
            )
        body = _body(arg.get("body"))
        streaming_id = arg.get("streamingID") or ""
        if not isinstance(streaming_id, str):
            raise ProtocolError("request event streamingID is not a string")
        request_id = headers.get("snyk-request-id", "")
        if not _UUID.match(request_id):
            request_id = str(arg.get("requestId") or "")
            if not _UUID.match(request_id):
                request_id = str(uuid.uuid4())
            headers["snyk-request-id"] = request_id
        return cls(
            url=_CTX_PREFIX.sub("", url),
            method=method.upper(),
            headers=headers,
            body=body,
            streaming_id=streaming_id,
            request_id=request_id,
        )


def _body(value: Any) -> bytes | None:
    if value is None or value == "":
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value) or None
    if isinstance(value, str):
        return value.encode()
    if (
        isinstance(value, dict)
        and value.get("type") == "Buffer"
        and isinstance(value.get("data"), list)
    ):
        try:
            return bytes(value["data"]) or None
        except (TypeError, ValueError):
            raise ProtocolError("request event body Buffer has non-byte data") from None
    # any other JSON value travels as its JSON text (snyk stringifies objects)
    return json.dumps(value, separators=(",", ":")).encode()
