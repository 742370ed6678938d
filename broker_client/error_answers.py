"""Answers the client makes up itself, in snyk-broker's shapes (``common/types/telemetry``).

Each carries the synthesized status, an ``errorType`` for the response-stream head, and a JSON
body ``{"code", "message"[, "reason", "url"]}`` that the server passes to its caller.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

FILTER_BLOCKED = "FILTER_BLOCKED"
DOWNSTREAM_TIMEOUT = "DOWNSTREAM_TIMEOUT"
DOWNSTREAM_UNREACHABLE = "DOWNSTREAM_UNREACHABLE"
DOWNSTREAM_ERROR = "DOWNSTREAM_ERROR"
BODY_TOO_LARGE = "BODY_TOO_LARGE"
BAD_REQUEST = "BAD_REQUEST"

#: Statuses used only when no downstream response exists.
SYNTHESIZED_STATUS = {
    DOWNSTREAM_TIMEOUT: 504,
    DOWNSTREAM_UNREACHABLE: 502,
    DOWNSTREAM_ERROR: 502,
    FILTER_BLOCKED: 401,
    BODY_TOO_LARGE: 502,
    BAD_REQUEST: 400,
}

WEBSOCKET_BLOCK_REASON = "[Websocket Flow][Blocked Request] Does not match any accept rule"
LOCAL_BLOCK_REASON = "Request does not match any accept rule, blocking HTTP request"


@dataclass(frozen=True)
class ErrorAnswer:
    status: int
    error_type: str
    body: dict[str, Any]
    extra_head: dict[str, Any] = field(default_factory=dict)

    def body_bytes(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()

    @property
    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json; charset=utf-8"}


def filter_blocked(url: str, reason: str = WEBSOCKET_BLOCK_REASON) -> ErrorAnswer:
    return ErrorAnswer(
        401,
        FILTER_BLOCKED,
        {"code": FILTER_BLOCKED, "message": "blocked", "reason": reason, "url": url},
    )


def bad_request(url: str, reason: str) -> ErrorAnswer:
    """A request the client refuses to make as written (request hygiene); never repaired."""
    return ErrorAnswer(
        400,
        BAD_REQUEST,
        {"code": BAD_REQUEST, "message": "refused", "reason": reason, "url": url},
    )


def downstream_failure(code: str, message: str) -> ErrorAnswer:
    return ErrorAnswer(SYNTHESIZED_STATUS[code], code, {"code": code, "message": message})


def body_too_large(size: int, limit: int) -> ErrorAnswer:
    message = f"body size of {size} is greater than max allowed of {limit} bytes"
    return ErrorAnswer(
        502,
        BODY_TOO_LARGE,
        {"code": BODY_TOO_LARGE, "message": message},
        {"originalBodySize": size},
    )


def classify_status(status: int) -> str | None:
    """The ``errorType`` label snyk-broker puts on a downstream status (the status is kept)."""
    if status == 401:
        return "DOWNSTREAM_UNAUTHORIZED"
    if status == 403:
        return "DOWNSTREAM_FORBIDDEN"
    if status == 429:
        return "DOWNSTREAM_RATE_LIMITED"
    if 500 <= status <= 599:
        return "DOWNSTREAM_SERVER_ERROR"
    if status >= 400 and status != 404:
        return "DOWNSTREAM_UNEXPECTED"
    return None
