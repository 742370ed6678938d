"""shared.logging: structlog is loaded only when a line is written; the lines stay as they were."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.logging import configure_logging, get_logger, register_secrets
from shared.redaction import SECRETS

ROOT = Path(__file__).resolve().parents[2]
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$")


def run_fresh(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a new interpreter, where nothing has imported structlog yet."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    SECRETS.clear()
    yield
    SECRETS.clear()
    root.handlers[:], level = saved
    root.setLevel(level)


def test_a_line_below_the_level_does_not_import_structlog_and_one_above_is_written_redacted() -> (
    None
):
    result = run_fresh(
        """
        import json, logging, sys
        from shared.logging import configure_logging, get_logger, register_secrets

        register_secrets("secret-before-configure")
        configure_logging("warning", service="cr-agent", stream=sys.stderr)
        register_secrets("secret-after-configure")
        log = get_logger("cr_agent.scan")
        log.info("quiet secret-before-configure")
        log.bind(job="j1").debug("quiet too")
        logging.getLogger("aiohttp.client").info("quiet library line")
        print(json.dumps({"quiet": "structlog" in sys.modules}))
        log.bind(job="j1").warning(
            "loud secret-before-configure",
            url="http://registry/v2/?t=secret-after-configure",
            password="not-registered-but-a-password",
        )
        print(json.dumps({"loud": "structlog" in sys.modules}))
        """
    )
    assert json_lines(result.stdout) == [{"quiet": False}, {"loud": True}]
    [line] = json_lines(result.stderr)
    # same keys in the same order as before the import became lazy
    assert list(line) == ["job", "url", "password", "event", "level", "timestamp", "service"]
    assert line["event"] == "loud [REDACTED]"
    assert line["url"] == "http://registry/v2/?t=[REDACTED]"
    assert line["password"] == "[REDACTED]"
    assert (line["job"], line["level"], line["service"]) == ("j1", "warning", "cr-agent")
    assert ISO_UTC.match(line["timestamp"])
    assert "secret-" not in result.stderr


def test_a_library_line_that_passes_the_level_is_formatted_and_redacted_in_a_fresh_process() -> (
    None
):
    result = run_fresh(
        """
        import json, logging, sys
        from shared.logging import configure_logging, register_secrets

        configure_logging("info", service="cr-agent", stream=sys.stderr)
        logging.getLogger("aiohttp.access").info("library chatter stays below warning")
        print(json.dumps({"quiet": "structlog" in sys.modules}))
        register_secrets("library-secret-value")
        logging.getLogger("aiohttp.client").warning("sent %s", "library-secret-value")
        print(json.dumps({"loud": "structlog" in sys.modules}))
        """
    )
    assert json_lines(result.stdout) == [{"quiet": False}, {"loud": True}]
    [line] = json_lines(result.stderr)
    assert list(line) == ["event", "level", "timestamp", "service"]
    assert line["event"] == "sent [REDACTED]"
    assert (line["level"], line["service"]) == ("warning", "cr-agent")


def test_unconfigured_loggers_still_print_through_structlogs_defaults() -> None:
    result = run_fresh(
        """
        from shared.logging import get_logger
        get_logger("early").info("before any configure", attempt=1)
        """
    )
    assert "before any configure" in result.stdout
    assert "attempt=1" in result.stdout


def test_first_lines_from_many_threads_at_once_are_each_written_whole() -> None:
    result = run_fresh(
        """
        import sys, threading
        from shared.logging import configure_logging, get_logger

        configure_logging("warning", service="svc", stream=sys.stderr)
        start = threading.Barrier(8)

        def worker(n):
            log = get_logger(f"worker.{n}").bind(worker=n)
            start.wait()
            for i in range(25):
                log.warning("line", i=i)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        """
    )
    lines = json_lines(result.stderr)
    assert len(lines) == 8 * 25
    assert {(line["worker"], line["i"]) for line in lines} == {
        (n, i) for n in range(8) for i in range(25)
    }
    assert all(line["service"] == "svc" and line["level"] == "warning" for line in lines)


def test_reconfiguring_moves_existing_loggers_to_the_new_stream_level_and_service(
    restore_root: None,
) -> None:
    first, second = io.StringIO(), io.StringIO()
    log = get_logger("t.reconf")
    configure_logging("warning", service="one", stream=first)
    log.info("below warning")
    log.warning("to the first")
    configure_logging("debug", service="two", stream=second)
    log.debug("to the second")
    assert [(line["event"], line["service"]) for line in json_lines(first.getvalue())] == [
        ("to the first", "one")
    ]
    assert [(line["event"], line["service"]) for line in json_lines(second.getvalue())] == [
        ("to the second", "two")
    ]


def test_bound_context_is_kept_dropped_and_replaced_like_structlogs(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("info", service="t", stream=stream)
    base = get_logger("t.ctx").bind(a=1, b=2)
    base.info("both")
    base.unbind("a").info("b only")
    base.try_unbind("a", "missing").info("b again")
    base.new(c=3).info("c only")
    with pytest.raises(KeyError):
        base.unbind("missing")
    contexts = [
        {k: v for k, v in line.items() if k in ("a", "b", "c")}
        for line in json_lines(stream.getvalue())
    ]
    assert contexts == [{"a": 1, "b": 2}, {"b": 2}, {"b": 2}, {"c": 3}]


def test_exception_lines_carry_the_redacted_traceback(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("info", service="t", stream=stream)
    register_secrets("traceback-secret")
    try:
        raise RuntimeError("failed with traceback-secret")
    except RuntimeError:
        get_logger("t.exc").exception("crashed")
    [line] = json_lines(stream.getvalue())
    assert line["level"] == "error"
    assert "RuntimeError: failed with [REDACTED]" in line["exception"]
    assert "traceback-secret" not in stream.getvalue()


def test_log_method_and_aliases_map_to_the_stdlib_levels(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("warning", service="t", stream=stream)
    log = get_logger("t.levels")
    log.log(logging.INFO, "dropped")
    log.log(logging.ERROR, "kept")
    log.warn("warned")
    log.fatal("fatal")
    assert [(line["event"], line["level"]) for line in json_lines(stream.getvalue())] == [
        ("kept", "error"),
        ("warned", "warning"),
        ("fatal", "critical"),
    ]


def test_other_attributes_come_from_the_real_structlog_logger(restore_root: None) -> None:
    configure_logging("warning", service="t", stream=io.StringIO())
    log = get_logger("t.attrs")
    assert log.name == "t.attrs"
    assert log.isEnabledFor(logging.ERROR) and not log.isEnabledFor(logging.INFO)


def test_capture_logs_after_configure_sees_the_lines_when_structlog_is_loaded(
    restore_root: None,
) -> None:
    # imported before configure_logging, as the services import structlog themselves
    import structlog.testing

    stream = io.StringIO()
    configure_logging("info", service="t", stream=stream)
    with structlog.testing.capture_logs() as captured:
        get_logger("t.capture").info("captured", n=1)
    assert captured == [{"event": "captured", "n": 1, "log_level": "info"}]
    get_logger("t.capture").info("written")
    assert [line["event"] for line in json_lines(stream.getvalue())] == ["written"]


def test_each_line_passes_the_redaction_processor_once(
    restore_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shared.logging as shared_logging
    from shared.redaction import redaction_processor

    seen: list[str] = []

    def counting(logger: Any, method: str, event_dict: Any) -> Any:
        seen.append(str(event_dict.get("event")))
        return redaction_processor(logger, method, event_dict)

    monkeypatch.setattr(shared_logging, "redaction_processor", counting)
    stream = io.StringIO()
    configure_logging("info", service="t", stream=stream)
    register_secrets("once-secret")
    get_logger("t.once").info("structlog line once-secret")
    logging.getLogger("t.once.stdlib").warning("stdlib line once-secret")
    assert sorted(seen) == ["stdlib line once-secret", "structlog line once-secret"]
    assert "once-secret" not in stream.getvalue()
    assert [line["event"] for line in json_lines(stream.getvalue())] == [
        "structlog line [REDACTED]",
        "stdlib line [REDACTED]",
    ]


async def test_a_request_aiohttps_parser_refuses_is_one_warning_line_without_a_traceback(
    restore_root: None,
) -> None:
    import asyncio

    from aiohttp import web

    stream = io.StringIO()
    configure_logging("info", service="t", stream=stream)
    register_secrets("url-secret-123")
    app = web.Application()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    [(host, port)] = runner.addresses
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /url-secret-123/" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        answer = await reader.read(200)
        writer.close()
    finally:
        await runner.cleanup()
    assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400")
    [line] = [x for x in json_lines(stream.getvalue()) if "malformed" in x["event"]]
    assert line["level"] == "warning" and "exception" not in line
    assert "LineTooLong" in line["event"] and "8190" in line["event"]
    assert "127.0.0.1" in line["event"]  # from where
    assert "Traceback" not in stream.getvalue() and "url-secret-123" not in stream.getvalue()
