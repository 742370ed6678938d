"""Wait for a condition in a test: retry a check until it passes, within a bound.

Instead of ``time.sleep(0.5); assert x``: ``eventually(lambda: ...)`` returns as soon as the
check passes (fast on a quick machine) and waits up to ``timeout`` on a slow one. A check
passes when it neither raises ``AssertionError`` (or one of ``retry_on``) nor returns
``False`` (a predicate returns a bool; a function of asserts returns ``None`` and passes);
its value is returned. When time is up the last failure is raised
again (an ``AssertionError`` for a false check), with a note saying how long it was retried.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

#: default bound: long enough for a loaded CI machine, short enough to fail a test visibly
TIMEOUT = 15.0


class _Falsy(AssertionError):
    pass


def _outcome(value: T, check: Callable[..., object]) -> T:
    if value is False:
        name = getattr(check, "__qualname__", repr(check))
        raise _Falsy(f"{name} returned {value!r}")
    return value


def _give_up(last: BaseException, timeout: float, tries: int) -> BaseException:
    last.add_note(f"eventually: still failing after {timeout:g}s ({tries} tries)")
    return last


def eventually(
    check: Callable[[], T],
    *,
    timeout: float = TIMEOUT,
    interval: float = 0.05,
    retry_on: tuple[type[BaseException], ...] = (AssertionError,),
) -> T:
    """Call ``check`` until it passes; its value. The last failure after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        tries += 1
        try:
            return _outcome(check(), check)
        except retry_on as exc:
            if time.monotonic() >= deadline:
                raise _give_up(exc, timeout, tries) from None
        time.sleep(interval)


@overload
async def eventually_async(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    retry_on: tuple[type[BaseException], ...] = ...,
) -> T: ...


@overload
async def eventually_async(
    check: Callable[[], T],
    *,
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    retry_on: tuple[type[BaseException], ...] = ...,
) -> T: ...


async def eventually_async(
    check: Callable[[], Any],
    *,
    timeout: float = TIMEOUT,  # noqa: ASYNC109 - a bound on retrying, not a cancel scope
    interval: float = 0.05,
    retry_on: tuple[type[BaseException], ...] = (AssertionError,),
) -> Any:
    """:func:`eventually` in an event loop: ``check`` may be a coroutine function, and the
    loop runs between tries."""
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        tries += 1
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            return _outcome(value, check)
        except retry_on as exc:
            if time.monotonic() >= deadline:
                raise _give_up(exc, timeout, tries) from None
        await asyncio.sleep(interval)
