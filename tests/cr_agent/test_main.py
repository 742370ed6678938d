"""The ``cr-agent`` dispatcher: one-shot commands end without interpreter teardown."""

from __future__ import annotations

import pytest

import cr_agent.__main__ as entry


class _Ended(Exception):
    pass


@pytest.fixture
def exits(monkeypatch):
    seen: list[tuple[str, int]] = []

    def fast(code: int) -> None:
        seen.append(("os._exit", code))
        raise _Ended

    def slow(code: int) -> None:
        seen.append(("sys.exit", code))
        raise _Ended

    monkeypatch.setattr(entry.os, "_exit", fast)
    monkeypatch.setattr(entry.sys, "exit", slow)
    return seen


def test_scan_ends_the_process_at_once_with_its_exit_code(monkeypatch, exits, capsys):
    monkeypatch.setattr(entry.sys, "argv", ["cr-agent", "scan", "bad reference!"])
    with pytest.raises(_Ended):
        entry.run()
    assert exits == [("os._exit", 1)]
    assert "bad reference!" in capsys.readouterr().err


def test_other_commands_and_usage_errors_exit_normally(monkeypatch, exits, capsys):
    monkeypatch.setattr(entry.sys, "argv", ["cr-agent", "frobnicate"])
    with pytest.raises(_Ended):
        entry.run()
    assert exits == [("sys.exit", 2)]
    assert "usage: cr-agent {scan|serve}" in capsys.readouterr().err
