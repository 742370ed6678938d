"""Docker Hub's pull-limit headers (``ratelimit-limit``, ``ratelimit-remaining``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimit:
    limit: int | None
    remaining: int | None
    window_seconds: int | None
    source: str | None = None


def _value_and_window(text: str) -> tuple[int | None, int | None]:
    # "100;w=21600"
    head, _, rest = text.partition(";")
    try:
        value = int(head.strip())
    except ValueError:
        return None, None
    window = None
    for part in rest.split(";"):
        key, _, val = part.strip().partition("=")
        if key == "w" and val.isdigit():
            window = int(val)
    return value, window


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    """The rate limit the response announces, or None when it announces none (= unlimited)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if "ratelimit-limit" not in lowered and "ratelimit-remaining" not in lowered:
        return None
    limit, window = _value_and_window(lowered.get("ratelimit-limit", ""))
    remaining, window2 = _value_and_window(lowered.get("ratelimit-remaining", ""))
    return RateLimit(limit, remaining, window or window2, lowered.get("docker-ratelimit-source"))


def parse_retry_after(value: str | None, *, cap: float = 300.0) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        import email.utils  # HTTP dates are rare here; spare every process the email package

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, min(seconds, cap))
