"""Back-off schedule: 0.5 s x 1.5^n with jitter in [1, 2), capped, optionally bounded."""

from __future__ import annotations

from broker_client.reconnect import Backoff


def test_schedule_without_jitter_is_primus_recovery() -> None:
    backoff = Backoff(cap_seconds=1000, rand=lambda: 0.0)
    assert [backoff.next_delay() for _ in range(4)] == [0.5, 0.75, 1.125, 1.6875]


def test_jitter_stays_between_one_and_two_times_the_step() -> None:
    low = Backoff(rand=lambda: 0.0)
    high = Backoff(rand=lambda: 0.999)
    for _ in range(5):
        a, b = low.next_delay(), high.next_delay()
        assert a is not None and b is not None and a <= b < 2 * a


def test_delay_is_capped_and_forever_by_default() -> None:
    backoff = Backoff(cap_seconds=3.0, rand=lambda: 0.5)
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(d is not None and d <= 3.0 for d in delays)
    assert delays[-1] == 3.0


def test_max_attempts_then_none_and_reset_after_success() -> None:
    backoff = Backoff(max_attempts=2, rand=lambda: 0.0)
    assert backoff.next_delay() == 0.5
    assert backoff.next_delay() == 0.75
    assert backoff.next_delay() is None
    backoff.reset()
    assert backoff.next_delay() == 0.5
