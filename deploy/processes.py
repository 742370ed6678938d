"""Start and stop real server processes on loopback (the stack, tests and benchmarks).

Ports: our own services bind port 0 and write the port they got to ``PORT_FILE``
(:mod:`shared.port_file`); :func:`wait_for_port_file` reads it back. Third-party servers that
bind port 0 without saying which port they got are asked the kernel
(:func:`wait_for_listening_port`). Those that cannot bind 0 (PostgreSQL) or must know their
port beforehand (a broker client's own URL) get one from :func:`free_port` through
:func:`on_a_free_port`, which starts them again on another port when the first was taken
between choosing and binding.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psutil

T = TypeVar("T")

#: how a server's log says its port was taken (Go, Node, PostgreSQL and Python all say so)
ADDRESS_IN_USE = "address already in use"


class StartFailed(RuntimeError):
    """A server did not come up; the message names it and quotes its log."""

    def __init__(self, message: str, *, exited: bool) -> None:
        super().__init__(message)
        self.exited = exited


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (a race: only for servers
    that cannot bind port 0 and report it; see :func:`on_a_free_port`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: sockets behind :func:`refused_port`, held until the process ends
_REFUSING: list[socket.socket] = []


def reserve_port() -> socket.socket:
    """A socket bound to a free 127.0.0.1 port, not listening: connections are refused and
    no other process can take the port until a server listens on this very socket (e.g.
    aiohttp's ``SockSite``). A port to name before its server starts, with no race."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def refused_port() -> int:
    """A 127.0.0.1 port where connections are refused for as long as this process runs:
    a "dead" URL for tests of unreachable peers (:func:`reserve_port`, kept)."""
    sock = reserve_port()
    _REFUSING.append(sock)
    return int(sock.getsockname()[1])


def wait_for_port(
    port: int,
    *,
    host: str = "127.0.0.1",
    timeout: float = 20.0,
    process: ServerProcess | None = None,
) -> None:
    """Block until something accepts TCP connections on ``host:port``; ``TimeoutError`` at
    ``timeout`` or as soon as ``process`` (the one meant to listen there) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (process is None or process.alive()):
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout}s (or it exited)")


def wait_for_http(
    url: str,
    *,
    timeout: float = 20.0,
    ok: Sequence[int] = (200,),
    process: ServerProcess | None = None,
) -> None:
    """Block until ``url`` answers with one of the ``ok`` statuses; ``TimeoutError`` at
    ``timeout`` or as soon as ``process`` (the one meant to answer) has exited."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline and (process is None or process.alive()):
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status in ok:
                    return
                last = resp.status
        except urllib.error.HTTPError as exc:
            if exc.code in ok:
                return
            last = exc.code
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(
        f"{url} did not answer {list(ok)} within {timeout}s or exited (last: {last!r})"
    )


class ServerProcess:
    """A child process whose output goes to a log file; stopped with SIGTERM then SIGKILL."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        log_path: Path,
        popen: Mapping[str, Any] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.log_path = log_path
        #: further ``subprocess.Popen`` arguments (e.g. ``user``)
        self.popen = dict(popen or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **self.popen,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def failed(self, name: str, why: str) -> StartFailed:
        """Stop this process; a :class:`StartFailed` saying ``why`` with the log's tail."""
        exited = not self.alive()
        tail = self.log_text()[-2000:]
        self.stop()
        state = "exited" if exited else why
        return StartFailed(f"{name} {state}; last log lines:\n{tail}", exited=exited)


def wait_for_port_file(
    process: ServerProcess, port_file: Path, *, name: str, timeout: float = 30.0
) -> dict[str, int]:
    """The ports ``process`` wrote to ``port_file`` (``PORT_FILE``) once it listens.

    Raises :class:`StartFailed` (the process stopped, its log quoted) when it exits first or
    writes nothing within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(FileNotFoundError):
            return {key: int(value) for key, value in json.loads(port_file.read_text()).items()}
        if not process.alive() or time.monotonic() > deadline:
            raise process.failed(name, f"did not report its port within {timeout:g}s")
        time.sleep(0.02)


def start_reporting(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    name: str,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
) -> tuple[ServerProcess, dict[str, int]]:
    """Start one of our services with ``PORT_FILE`` set; it and the ports it bound.

    Its port settings in ``env`` may be 0. :class:`StartFailed` (with its log) when it exits
    or reports nothing within ``timeout`` seconds.
    """
    port_file = log_path.with_name(f".{log_path.name}.{uuid.uuid4().hex[:8]}.port")
    process = ServerProcess(
        argv, env={**env, "PORT_FILE": str(port_file)}, cwd=cwd, log_path=log_path
    ).start()
    try:
        return process, wait_for_port_file(process, port_file, name=name, timeout=timeout)
    except BaseException:  # also Ctrl-C while waiting: never leave the child behind
        process.stop()
        raise
    finally:
        port_file.unlink(missing_ok=True)


def wait_for_listening_port(process: ServerProcess, *, name: str, timeout: float = 30.0) -> int:
    """The port a third-party server started on port 0 listens on, read from the kernel's
    socket table (psutil) for it and its children: for servers that bind 0 but do not say
    which port they got. :class:`StartFailed` when it exits first or listens on nothing within
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while process.alive() and time.monotonic() < deadline:
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(process.pid)
            for proc in (parent, *parent.children(recursive=True)):
                for conn in proc.net_connections("tcp"):
                    if conn.status == psutil.CONN_LISTEN:
                        return int(conn.laddr.port)
        time.sleep(0.05)
    raise process.failed(name, f"listened on no port within {timeout:g}s")


def on_a_free_port(start: Callable[[int], T], *, attempts: int = 3) -> T:
    """``start(port)`` on a :func:`free_port`, again on a new one when the port was taken.

    For servers that must know their port before they start. Another process may take the
    port between choosing and binding: when ``start`` raises :class:`StartFailed` for a
    process that exited saying "address already in use", it is called again (``attempts``
    in all); any other failure is raised at once.
    """
    for attempt in range(attempts):
        try:
            return start(free_port())
        except StartFailed as exc:
            taken = exc.exited and ADDRESS_IN_USE in str(exc).lower()
            if not taken or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def start_on_free_port(
    launch: Callable[[int], ServerProcess],
    wait_ready: Callable[[ServerProcess, int], None],
    *,
    name: str,
    attempts: int = 3,
) -> tuple[ServerProcess, int]:
    """A third-party server that cannot bind port 0 and report it, via :func:`on_a_free_port`.

    ``launch(port)`` starts it; ``wait_ready(process, port)`` returns once it answers or
    raises ``TimeoutError`` (also as soon as it exits). Returns the process and its port.
    """

    def start(port: int) -> tuple[ServerProcess, int]:
        process = launch(port)
        try:
            wait_ready(process, port)
        except TimeoutError:
            raise process.failed(name, "did not become ready") from None
        except BaseException:  # also Ctrl-C while waiting: never leave the server behind
            process.stop()
            raise
        return process, port

    return on_a_free_port(start, attempts=attempts)


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
