"""``cr-agent scan``'s view of its registry traffic: a line when a request is slow, and one
debug line per request (``--log-level debug``).

A registry that accepts the connection and never answers would otherwise keep the command
silent until the timeout ran out on every retry. :class:`WatchedTransport` wraps the client's
transport; it never sees or logs headers, and logs URLs without their query.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from cr_agent.registry.transport import Response, Transport
from shared.logging import get_logger

log = get_logger("cr_agent.registry")


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class WatchedTransport:
    """A :class:`Transport` that reports requests still unanswered after ``slow_after`` s."""

    def __init__(
        self,
        inner: Transport,
        *,
        slow_after: float,
        timeout: float,
        notice: Callable[[str], None],
    ) -> None:
        self.inner = inner
        self.slow_after = slow_after
        self.timeout = timeout
        self.notice = notice
        self.debug = logging.getLogger().isEnabledFor(logging.DEBUG)

    def _slow(self, method: str, url: str) -> None:
        parts = urlsplit(url)
        self.notice(
            f"waiting for {parts.netloc}: {method} {parts.path} has not answered after "
            f"{self.slow_after:g} s (each try gives up after {self.timeout:g} s; --timeout)"
        )

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> Response:
        started = time.monotonic()
        timer = asyncio.get_running_loop().call_later(self.slow_after, self._slow, method, url)
        try:
            response = await self.inner.request(method, url, headers=headers, body=body)
        except BaseException as exc:
            if self.debug:
                log.debug(
                    "registry http failed",
                    method=method,
                    url=_without_query(url),
                    error=type(exc).__name__,
                    ms=round((time.monotonic() - started) * 1000, 1),
                )
            raise
        finally:
            timer.cancel()
        if self.debug:
            log.debug(
                "registry http",
                method=method,
                url=_without_query(url),
                status=response.status,
                ms=round((time.monotonic() - started) * 1000, 1),
            )
        return response

    async def close(self) -> None:
        await self.inner.close()
