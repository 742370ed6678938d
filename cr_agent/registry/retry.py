"""The registry client's one retry loop: 408/429/5xx answers and network failures.

A failure worth another try raises :class:`Retryable`; :func:`with_retries` waits (the
server's ``Retry-After`` when it sent one, else exponential back-off, never more than
``max_wait``) and tries again until ``tries`` attempts have failed, then re-raises the last.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class Retryable(Exception):
    """One attempt failed in a way that another may not: ``status`` is None for no answer."""

    def __init__(self, detail: str, status: int | None, wait: float | None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.wait = wait


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    tries: int = 4
    backoff: float = 0.5
    max_wait: float = 60.0

    def delay(self, failure: Retryable, failed: int) -> float:
        """Seconds to wait after ``failed`` failed attempts."""
        if failure.wait is not None:
            return min(failure.wait, self.max_wait)
        return min(self.backoff * (2 ** (failed - 1)), self.max_wait)


async def with_retries(attempt: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """``await attempt()`` until it does not raise :class:`Retryable` or the tries run out."""
    failed = 0
    while True:
        try:
            return await attempt()
        except Retryable as exc:
            failed += 1
            if failed >= policy.tries:
                raise
            await asyncio.sleep(policy.delay(exc, failed))
