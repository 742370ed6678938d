"""The loop a control-plane worker runs: a round, then, when it found nothing to do, a wait for a
wake-up or the poll interval. Shared by the scan dispatcher and the sync scheduler."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from shared.logging import get_logger

log = get_logger(__name__)


async def run_rounds(
    one_round: Callable[[], Awaitable[bool]],
    wake: asyncio.Event,
    poll_seconds: float,
    what: str,
) -> None:
    """Run ``one_round`` forever; it returns True when it did work (then the next round starts
    at once). A failed round is logged and waited out: the database may be away for a moment."""
    while True:
        try:
            busy = await one_round()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error(f"{what} round failed", error=repr(exc)[:500])
            busy = False
        if not busy:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll_seconds):
                    await wake.wait()
            wake.clear()
