"""Reconnect back-off: Primus' recovery schedule, capped, forever unless told otherwise.

Attempt n waits ``min(round((1 + random()) * 500 ms * 1.5^(n-1)), cap)``: jitter keeps many
clients that lost the same server from coming back in lock-step.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

BASE_SECONDS = 0.5
FACTOR = 1.5


@dataclass
class Backoff:
    cap_seconds: float = 60.0
    max_attempts: int = 0  # 0 = forever
    rand: Callable[[], float] = field(default=random.random, repr=False)
    attempts: int = 0

    def next_delay(self) -> float | None:
        """Seconds to wait before the next attempt, or None when attempts are used up."""
        if self.max_attempts and self.attempts >= self.max_attempts:
            return None
        self.attempts += 1
        exponent = min(self.attempts - 1, 64)  # 1.5^64 is already far past any cap
        delay = (1 + self.rand()) * BASE_SECONDS * FACTOR**exponent
        return min(delay, self.cap_seconds)

    def reset(self) -> None:
        """A connection succeeded: the next failure starts from the first step again."""
        self.attempts = 0
