"""A ``request`` event from the server, as a value: what the Snyk side asked for."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from shared.broker_message import RequestMessage

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
        """Parse the event argument (ProtocolError naming the bad field); the request gets a
        ``snyk-request-id`` (the caller's, the event's, or a new one) and loses a ``/ctx/``."""
        message = RequestMessage.from_event(arg)
        headers = message.headers
        request_id = headers.get("snyk-request-id", "")
        if not _UUID.match(request_id):
            request_id = message.request_id
            if not _UUID.match(request_id):
                request_id = str(uuid.uuid4())
            headers["snyk-request-id"] = request_id
        return cls(
            url=_CTX_PREFIX.sub("", message.url),
            method=message.method,
            headers=headers,
            body=message.body or None,
            streaming_id=message.streaming_id,
            request_id=request_id,
        )
