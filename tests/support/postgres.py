"""Run Debian's PostgreSQL on 127.0.0.1 for tests and benchmarks.

:func:`start_postgres` runs ``initdb`` in a temporary directory and starts ``postgres`` on a
free port (as the ``postgres`` system user when we are root, since initdb refuses root);
:meth:`RunningPostgres.create_database` hands out a fresh empty database per test.
The pytest fixture ``postgres_server`` (session-wide) skips with the reason when PostgreSQL
is not installed (``apt-get install postgresql``; ``make apt`` installs it).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import CalledProcessError
from typing import Any

import pytest

from deploy.processes import ServerProcess, start_on_free_port, wait_for_port
from tests.support.eventually import eventually

SUPERUSER = "postgres"
#: ``-c`` settings of the test server: loopback only, no durability, room for test pools
SERVER_SETTINGS = (
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "full_page_writes=off",
    "max_connections=200",
)


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding initdb and postgres."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    return Path(found[-1]).parent if found else None


def unavailable_reason() -> str | None:
    if find_bindir() is None:
        return "PostgreSQL is not installed (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and no 'postgres' system user to run initdb as"
    return None


@dataclass
class RunningPostgres:
    port: int
    directory: Path
    process: ServerProcess
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        name = f"test_{os.getpid()}_{next(self._counter)}"
        self._psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _psql(self, sql: str) -> None:
        bindir = self.directory / "bin"
        subprocess.run(
            [
                str(bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-qc",
                sql,
            ],
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        proc = self.process.proc
        if proc is not None and proc.poll() is None:
            # "fast" shutdown: ends open sessions (a test's pool may still hold some) at once;
            # to the postmaster only, which stops its backends itself
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


def _as_postgres_user() -> dict[str, Any]:
    """Popen arguments that run the child as the ``postgres`` system user when we are root
    (the child is postgres itself, not a wrapper, so signals reach it)."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


def start_postgres() -> RunningPostgres:
    """initdb in a temporary directory and start the server on a free 127.0.0.1 port."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    bindir = find_bindir()
    assert bindir is not None
    directory = Path(tempfile.mkdtemp(prefix="crbroker-pg-"))
    data = directory / "data"
    # the psql of the same major version, reachable from the directory for create_database
    (directory / "bin").symlink_to(bindir)
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    as_postgres = _as_postgres_user()
    subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        cwd=directory,
        **as_postgres,
    )

    def launch(port: int) -> ServerProcess:
        argv = [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(directory)]
        for setting in SERVER_SETTINGS:
            argv += ["-c", setting]
        log_path = directory / f"postgres-{port}.log"
        return ServerProcess(argv, cwd=directory, log_path=log_path, popen=as_postgres).start()

    def wait_ready(process: ServerProcess, port: int) -> None:
        wait_for_port(port, timeout=30, process=process)
        # the port opens before the server accepts logins
        probe = RunningPostgres(port, directory, process)
        eventually(lambda: probe._psql("SELECT 1"), timeout=30, retry_on=(CalledProcessError,))

    try:
        # PostgreSQL cannot bind port 0: a free port, another if it was taken meanwhile
        process, port = start_on_free_port(launch, wait_ready, name="postgres")
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    running = RunningPostgres(port, directory, process)
    return running


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[RunningPostgres]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()
