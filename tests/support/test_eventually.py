"""tests.support.eventually: retry a check within a bound, then raise its last failure."""

from __future__ import annotations

import itertools

import pytest

from tests.support.eventually import eventually, eventually_async


def test_returns_the_value_once_the_check_passes() -> None:
    calls = itertools.count(1)

    def third_time() -> int:
        n = next(calls)
        assert n >= 3, f"try {n}"
        return n

    assert eventually(third_time, interval=0) == 3


def test_raises_the_last_assertion_with_a_note_when_time_is_up() -> None:
    calls = itertools.count(1)

    def never() -> None:
        raise AssertionError(f"try {next(calls)}")

    with pytest.raises(AssertionError) as failure:
        eventually(never, timeout=0.2, interval=0.01)
    tries = int(str(failure.value).removeprefix("try "))
    assert tries > 1
    assert failure.value.__notes__ == [f"eventually: still failing after 0.2s ({tries} tries)"]


def test_a_false_result_is_retried_and_named_and_none_passes() -> None:
    def is_ready() -> bool:
        return False

    with pytest.raises(AssertionError, match="is_ready returned False"):
        eventually(is_ready, timeout=0.05, interval=0.01)
    assert eventually(lambda: None) is None  # a check made of asserts returns None


def test_other_errors_are_raised_at_once_unless_named() -> None:
    calls = itertools.count(1)

    def broken() -> None:
        next(calls)
        raise KeyError("x")

    with pytest.raises(KeyError):
        eventually(broken, timeout=5)
    assert next(calls) == 2  # one try only

    flaky = itertools.count(1)

    def recovers() -> str:
        if next(flaky) < 2:
            raise KeyError("x")
        return "ok"

    assert eventually(recovers, interval=0, retry_on=(KeyError,)) == "ok"


async def test_the_async_form_awaits_coroutine_checks() -> None:
    calls = itertools.count(1)

    async def second_time() -> int:
        n = next(calls)
        assert n >= 2
        return n

    assert await eventually_async(second_time, interval=0) == 2
    with pytest.raises(AssertionError, match="returned False"):
        await eventually_async(lambda: False, timeout=0.05, interval=0.01)
