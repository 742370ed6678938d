"""The body frame of ``POST /response-data/<token>/<streamingID>``.

Layout: a 4-byte little-endian unsigned length N, N bytes of UTF-8 JSON
``{"status": int, "headers": {...}, "errorType": "..."?}``, then the raw response body until the
end of the request. :class:`ResponseStreamDecoder` is incremental: it never holds more than the
head (bounded by ``max_head``) and hands body bytes on as they arrive.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

from shared.protocol_error import ProtocolError

CONTENT_TYPE = "application/vnd.broker.stream+octet-stream"
LENGTH_PREFIX = 4
DEFAULT_MAX_HEAD = 1 << 20


@dataclass(frozen=True)
class Head:
    status: int
    headers: dict[str, Any] = field(default_factory=dict)
    error_type: str | None = None


@dataclass(frozen=True)
class BodyChunk:
    data: bytes


def encode_head(status: int, headers: dict[str, Any], error_type: str | None = None) -> bytes:
    """Length prefix plus JSON head; the caller then sends the raw body bytes."""
    doc: dict[str, Any] = {"status": status, "headers": headers}
    if error_type is not None:
        doc["errorType"] = error_type
    body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return struct.pack("<I", len(body)) + body


def parse_head(raw: bytes) -> Head:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"response stream head is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ProtocolError("response stream head is not a JSON object")
    status = doc.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise ProtocolError(f"response stream head has an invalid status {status!r}")
    headers = doc.get("headers", {})
    if headers is None:
        headers = {}
    if not isinstance(headers, dict):
        raise ProtocolError("response stream head: headers is not an object")
    error_type = doc.get("errorType")
    if error_type is not None and not isinstance(error_type, str):
        raise ProtocolError("response stream head: errorType is not a string")
    return Head(status, headers, error_type)


class ResponseStreamDecoder:
    """Feed request body chunks; get one :class:`Head` and then :class:`BodyChunk` values.

    ``feed`` raises ProtocolError as soon as the head is known to be bad (too long, not JSON);
    ``close`` raises ProtocolError when the stream ended before the head was complete.
    """

    def __init__(self, max_head: int = DEFAULT_MAX_HEAD) -> None:
        self.max_head = max_head
        self._buffer = bytearray()
        self._head_length: int | None = None
        self.head: Head | None = None
        self.body_bytes = 0

    def feed(self, chunk: bytes) -> list[Head | BodyChunk]:
        if self.head is not None:
            if not chunk:
                return []
            self.body_bytes += len(chunk)
            return [BodyChunk(bytes(chunk))]
        self._buffer += chunk
        events: list[Head | BodyChunk] = []
        if self._head_length is None:
            if len(self._buffer) < LENGTH_PREFIX:
                return events
            (self._head_length,) = struct.unpack_from("<I", self._buffer)
            if self._head_length == 0:
                raise ProtocolError("response stream head length is 0")
            if self._head_length > self.max_head:
                raise ProtocolError(
                    f"response stream head length {self._head_length} exceeds the limit of {self.max_head} bytes"
                )
        end = LENGTH_PREFIX + self._head_length
        if len(self._buffer) < end:
            return events
        self.head = parse_head(bytes(self._buffer[LENGTH_PREFIX:end]))
        events.append(self.head)
        rest = bytes(self._buffer[end:])
        self._buffer = bytearray()
        if rest:
            self.body_bytes += len(rest)
            events.append(BodyChunk(rest))
        return events

    def close(self) -> None:
        """Signal the end of the request body."""
        if self.head is not None:
            return
        if self._head_length is None:
            raise ProtocolError(
                f"response stream ended after {len(self._buffer)} bytes, before the 4-byte head length"
            )
        raise ProtocolError(
            f"response stream head length {self._head_length} is larger than the "
            f"{len(self._buffer) - LENGTH_PREFIX} bytes received"
        )
