"""deploy.processes: ports for third-party servers, without the free-port race."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from deploy.processes import (
    ServerProcess,
    StartFailed,
    refused_port,
    start_on_free_port,
    wait_for_http,
    wait_for_listening_port,
)

#: a server that binds the port in argv[1] ("0": any) and answers HTTP
SERVE = (
    "import http.server, sys; http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])),"
    " http.server.SimpleHTTPRequestHandler).serve_forever()"
)


def _server(tmp_path: Path, port: int, name: str) -> ServerProcess:
    return ServerProcess(
        [sys.executable, "-c", SERVE, str(port)], cwd=tmp_path, log_path=tmp_path / name
    ).start()


def test_a_port_taken_between_choosing_and_binding_is_replaced(tmp_path: Path) -> None:
    squatter = socket.create_server(("127.0.0.1", 0))
    taken = squatter.getsockname()[1]
    tries: list[int] = []

    def launch(port: int) -> ServerProcess:
        # the first try loses the race: someone else bound "its" port meanwhile
        tries.append(port)
        return _server(tmp_path, taken if len(tries) == 1 else port, f"try-{len(tries)}.log")

    def ready(process: ServerProcess, port: int) -> None:
        wait_for_http(f"http://127.0.0.1:{port}/", timeout=10, process=process)

    try:
        process, port = start_on_free_port(launch, ready, name="http.server")
    finally:
        squatter.close()
    try:
        assert len(tries) == 2 and port == tries[1]
        assert "address already in use" in (tmp_path / "try-1.log").read_text().lower()
    finally:
        process.stop()


def test_other_failures_are_not_retried_and_quote_the_log(tmp_path: Path) -> None:
    tries: list[int] = []

    def launch(port: int) -> ServerProcess:
        tries.append(port)
        return _server(tmp_path, -1, "bad.log")  # exits: port out of range

    def ready(process: ServerProcess, port: int) -> None:
        wait_for_http(f"http://127.0.0.1:{port}/", timeout=10, process=process)

    with pytest.raises(StartFailed, match=r"http\.server exited; last log lines:") as failure:
        start_on_free_port(launch, ready, name="http.server")
    assert failure.value.exited and len(tries) == 1
    assert "OverflowError" in str(failure.value)


def test_the_port_a_server_bound_for_port_0_is_read_from_the_kernel(tmp_path: Path) -> None:
    process = _server(tmp_path, 0, "zero.log")
    try:
        port = wait_for_listening_port(process, name="http.server", timeout=10)
        wait_for_http(f"http://127.0.0.1:{port}/", timeout=10, process=process)
    finally:
        process.stop()


def test_a_refused_port_refuses_and_cannot_be_taken() -> None:
    port = refused_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    with pytest.raises(OSError, match="in use"):
        socket.create_server(("127.0.0.1", port))
