"""``pip install .`` without extras, into a fresh virtual environment, runs every console script.

The package is installed from a copy of what the wheel ships (pyproject.toml, README.md and the
runtime packages), so neither the repository on ``sys.path`` nor a dev extra can hide a missing
dependency. Every module is imported there (plug-ins loaded by name included), then each console
script of ``[project.scripts]`` is started from that environment, on loopback, until it answers
its health check. A new console script is one entry in :data:`SERVICES`.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import subprocess
import sys
import tomllib
import venv
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.processes import (
    ServerProcess,
    StartFailed,
    on_a_free_port,
    start_reporting,
    wait_for_http,
)
from tests.e2e.test_dependencies import runtime_packages
from tests.e2e.test_dockerfiles import REPO

pytestmark = pytest.mark.timeout(900)

SCRIPTS: dict[str, str] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
TOKEN = f"install-test-{secrets.token_hex(8)}"
AGENT_SECRET = secrets.token_hex(16)


@dataclass(frozen=True)
class Started:
    """What the services started so far offer the next one: their base URLs, and a work dir."""

    urls: dict[str, str]
    workdir: Path


@dataclass(frozen=True)
class Service:
    """How to start one console script: arguments after its name, and its environment given
    the port it is to listen on and the services started before it (listed in ``after``).

    The port is 0 (the service binds one and writes it to ``PORT_FILE`` under ``port_key``)
    unless ``own_url``: a service whose own URL is a setting gets a chosen port."""

    env: Callable[[int, Started], dict[str, str]]
    args: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    health: str = "/healthcheck"
    port_key: str = "PORT"
    own_url: bool = False


SERVICES: dict[str, Service] = {
    "broker-server": Service(
        env=lambda port, _s: {
            "PORT": str(port),
            "BROKER_SERVER_HOST": "127.0.0.1",
            "BROKER_TOKENS": TOKEN,
            "UPSTREAM_URL": "http://127.0.0.1:9",  # never called: no scan is asked for
        },
    ),
    "cr-agent": Service(
        args=("serve",),
        env=lambda port, s: {
            "SNYK_PORT": str(port),
            "HOST": "127.0.0.1",
            "SPOOL_DIR": str(s.workdir / "spool"),
            "LAYER_CACHE_DIR": str(s.workdir / "layer-cache"),
            "CR_AGENT_SECRET": AGENT_SECRET,
        },
        port_key="SNYK_PORT",
    ),
    # healthy once its socket to the broker server is open
    "broker-client": Service(
        after=("broker-server", "cr-agent"),
        env=lambda port, s: {
            "PORT": str(port),
            "BROKER_CLIENT_LISTEN_HOST": "127.0.0.1",
            "BROKER_TOKEN": TOKEN,
            "BROKER_SERVER_URL": s.urls["broker-server"],
            "BROKER_CLIENT_URL": f"http://127.0.0.1:{port}",
            "CR_AGENT_URL": s.urls["cr-agent"],
            "CR_AGENT_SECRET": AGENT_SECRET,
            "CR_TYPE": "generic-cr",
            "CR_BASE": "registry.invalid",  # not contacted: no request is forwarded
            "CR_USERNAME": "install-test",
            "CR_PASSWORD": secrets.token_hex(8),
        },
        own_url=True,
    ),
    # relay + control plane in one process; health on the relay's port
    "crbroker-server": Service(
        env=lambda port, s: {
            "PORT": str(port),
            "BROKER_SERVER_HOST": "127.0.0.1",
            "CONTROL_PLANE_PORT": "0",
            "CONTROL_PLANE_HOST": "127.0.0.1",
            "CRBROKER_DATA_DIR": str(s.workdir / "crbroker-data"),
        },
    ),
}


def start_order() -> list[str]:
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"SERVICES: {' -> '.join((*path, name))} is a cycle"
        for before in SERVICES[name].after:
            visit(before, (*path, name))
        if name not in order:
            order.append(name)

    for name in SERVICES:
        visit(name, ())
    return order


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment holding ``pip install .`` of a copy of the package."""
    root = tmp_path_factory.mktemp("install")
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for package in runtime_packages():
        shutil.copytree(
            REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    pip_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [env_dir / "bin" / "python", "-m", "pip", "install", "-q", str(source)],
        env=pip_env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return env_dir


def clean_env(env_dir: Path) -> dict[str, str]:
    """PATH with the fresh environment first; nothing that points back at this checkout."""
    return {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}


def test_every_module_imports_in_a_fresh_install(fresh_env: Path, tmp_path: Path) -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "failed = []\n"
        "for top in sys.argv[1:]:\n"
        "    package = importlib.import_module(top)\n"
        "    for info in pkgutil.walk_packages(package.__path__, top + '.'):\n"
        "        if info.name.rsplit('.', 1)[-1] == '__main__':\n"
        "            continue\n"
        "        if info.name.endswith('.migrations.env'):\n"
        "            continue  # Alembic's script, run by Alembic with its context set\n"
        "        try:\n"
        "            importlib.import_module(info.name)\n"
        "        except Exception as exc:\n"
        "            failed.append(f'{info.name}: {exc!r}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    done = subprocess.run(
        [fresh_env / "bin" / "python", "-c", code, *runtime_packages()],
        env=clean_env(fresh_env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    # and it ran the installed copy, not this checkout
    where = subprocess.run(
        [fresh_env / "bin" / "python", "-c", "import shared; print(shared.__file__)"],
        env=clean_env(fresh_env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(fresh_env)), where


def test_every_console_script_has_a_service_entry() -> None:
    assert set(SCRIPTS) == set(SERVICES), (
        "tests/e2e/test_install.py SERVICES must say how to start every [project.scripts] "
        f"entry: missing {sorted(set(SCRIPTS) - set(SERVICES))}, "
        f"stale {sorted(set(SERVICES) - set(SCRIPTS))}"
    )


def _start_script(
    name: str, fresh_env: Path, state: Started, workdir: Path, port: int
) -> tuple[ServerProcess, str]:
    """Console script ``name`` on ``port`` (0: its own choice), answering its health check."""
    service = SERVICES[name]
    argv = [str(fresh_env / "bin" / name), *service.args]
    env = {**clean_env(fresh_env), "LOG_LEVEL": "info", **service.env(port, state)}
    process, ports = start_reporting(
        argv, env=env, cwd=workdir, log_path=workdir / f"{name}.log", name=name
    )
    url = f"http://127.0.0.1:{ports[service.port_key]}"
    try:
        wait_for_http(url + service.health, timeout=60, process=process)
    except TimeoutError:
        raise process.failed(name, "did not answer its health check") from None
    return process, url


@pytest.fixture
def started(fresh_env: Path, tmp_path: Path) -> Iterator[tuple[Started, list[ServerProcess]]]:
    state = Started({}, tmp_path)
    processes: list[ServerProcess] = []
    with ExitStack() as stack:
        for name in start_order():
            start = functools.partial(_start_script, name, fresh_env, state, tmp_path)
            try:
                process, url = on_a_free_port(start) if SERVICES[name].own_url else start(0)
            except StartFailed as exc:
                pytest.fail(f"{name} from a fresh `pip install .`: {exc}")
            stack.callback(process.stop)
            processes.append(process)
            state.urls[name] = url
        yield state, processes


def test_every_console_script_starts_and_answers_its_health_check(
    started: tuple[Started, list[ServerProcess]],
) -> None:
    state, processes = started
    assert set(state.urls) == set(SERVICES)
    for process in processes:
        assert process.alive(), process.log_text()[-3000:]
        assert "Traceback" not in process.log_text(), process.log_text()[-3000:]
    # the scripts are the fresh environment's, not this interpreter's
    assert not any(Path(p.argv[0]).parent == Path(sys.executable).parent for p in processes)
