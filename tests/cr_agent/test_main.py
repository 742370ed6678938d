"""The ``cr-agent`` dispatcher: exit codes, and a reader that goes away mid-output."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import cr_agent.__main__ as entry


def _exit_code(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> int:
    monkeypatch.setattr(entry.sys, "argv", ["cr-agent", *argv])
    with pytest.raises(SystemExit) as ended:
        entry.run()
    return int(ended.value.code or 0)


def test_scan_exits_with_its_code(monkeypatch, capsys):
    assert _exit_code(monkeypatch, ["scan", "bad reference!"]) == 1
    assert "bad reference!" in capsys.readouterr().err


def test_other_commands_and_usage_errors_exit_normally(monkeypatch, capsys):
    assert _exit_code(monkeypatch, ["frobnicate"]) == 2
    assert "usage: cr-agent {scan|serve}" in capsys.readouterr().err


def test_a_reader_that_went_away_is_a_failed_exit_not_a_traceback():
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `cr-agent --help | true`
    with os.fdopen(write_end, "wb") as stdout:
        done = subprocess.run(
            [sys.executable, "-c", "from cr_agent.__main__ import run; run()", "--help"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    assert done.returncode == 1
    assert b"Traceback" not in done.stderr and b"BrokenPipeError" not in done.stderr
