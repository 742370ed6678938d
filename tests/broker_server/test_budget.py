"""Bytes in flight are charged per account, token and server; a refusal names its limit and
charges nothing; what is given back can be taken again."""

from __future__ import annotations

import pytest

from broker_server.budget import ByteBudget, OverBudget, Refusal


def budget() -> ByteBudget:
    return ByteBudget(server=1000, token=600, connection=400)


def test_each_limit_refuses_by_name_and_charges_nothing():
    b = budget()
    one = b.account("a")
    assert one.try_take(400) is None
    assert one.try_take(1) == Refusal("connection", 400)
    two = b.account("a")
    assert two.try_take(201) == Refusal("token", 600)
    assert two.try_take(200) is None
    other = b.account("b")
    assert other.try_take(300) is None
    third = b.account("c")
    assert third.try_take(101) == Refusal("server", 1000)
    assert (b.total, b.held_by("a"), b.held_by("b"), b.held_by("c")) == (900, 600, 300, 0)
    assert third.try_take(100) is None
    assert b.total == 1000


def test_requests_have_no_connection_limit_but_the_token_limit():
    b = budget()
    request = b.account("a", connection=False)
    assert request.try_take(600) is None
    assert request.try_take(1) == Refusal("token", 600)


def test_giving_back_frees_room_and_close_returns_everything():
    b = budget()
    one = b.account("a")
    one.take(300)
    one.give(100)
    assert (one.held, b.total) == (200, 200)
    one.give(10_000)  # never more than it holds
    assert (one.held, b.total, b.held_by("a")) == (0, 0, 0)
    one.take(250)
    one.close()
    assert b.total == 0
    # a closed account takes nothing: nobody would give it back
    assert one.try_take(1) == Refusal("closed", 0)
    assert b.total == 0


def test_take_raises_with_the_refusal_and_the_reason_fits_a_close_frame():
    b = budget()
    with pytest.raises(OverBudget) as raised:
        b.account("a").take(401)
    refusal = raised.value.refusal
    assert refusal.http_status == 429
    assert Refusal("server", 1).http_status == 503
    big = Refusal("connection", 2**62)
    assert len(big.message.encode()) <= 123


def test_a_closed_account_refuses_as_closed():
    account = budget().account("a")
    account.close()
    refusal = account.try_take(1)
    assert refusal == Refusal("closed", 0)
    assert (refusal.message, refusal.http_status) == ("the socket has closed", 410)
