"""Run the real snyk-broker 5.22.14 (npm) server or client on loopback for interop tests.

Everything comes from the npm install (``make npm``), so a clone of the repository alone runs
these tests: the stock container-registry-agent filter is the package's
``dist/client-templates/container-registry-agent/accept.json.sample``. The npm tarball lacks
``config.default.json``, which the broker refuses to start without (it looks for one in an
ancestor of its own directory); :func:`prepare` writes one into ``.cache/snyk-broker/``
(git-ignored): the upstream repository's file from ``../shared/reference`` when that folder is
beside the clone, else :data:`MINIMAL_CONFIG`, with which the classic server and client run
alike. Tests that need the real
broker call :func:`require_snyk_broker`, which skips with a reason when the npm install is
missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.processes import (
    ServerProcess,
    on_a_free_port,
    wait_for_http,
    wait_for_listening_port,
)
from deploy.stack import Service
from tests.support.eventually import eventually

REPO = Path(__file__).resolve().parents[2]
#: optional: the upstream repository's config.default.json, used when present
REFERENCE_DIR = REPO.parent / "shared" / "reference" / "snyk-broker"
CACHE_DIR = REPO / ".cache" / "snyk-broker"
BROKER_BIN = CACHE_DIR / "node_modules" / ".bin" / "broker"
PACKAGE_DIR = CACHE_DIR / "node_modules" / "snyk-broker"
STOCK_CRA_ACCEPT = (
    PACKAGE_DIR / "dist" / "client-templates" / "container-registry-agent" / "accept.json.sample"
)
#: What the npm client reports; the package itself has no version (protocol reference, section 9).
SNYK_CLIENT_VERSION = "5.22.14"

# Everything the real broker would otherwise try to reach off-box is switched off.
_QUIET_ENV = {
    "PREFLIGHT_CHECKS_ENABLED": "false",
    "IPV6_CONNECTIVITY_CHECK_ENABLED": "false",
    "NODE_NO_WARNINGS": "1",
}


def missing_reason() -> str | None:
    """Why the real snyk-broker cannot run here, or None when it can."""
    if not BROKER_BIN.exists():
        return f"snyk-broker npm install not found at {BROKER_BIN} (run `make npm`)"
    if shutil.which("node") is None:
        return "node is not installed"
    return None


def require_snyk_broker() -> Path:
    """Skip the calling test when the real broker is unavailable; else prepare and return the binary."""
    import pytest

    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    prepare()
    return BROKER_BIN


#: What the classic server and client need from config.default.json when the upstream
#: repository's file is not at hand: where the request "workloads" live inside the package
#: (without them the server accepts clients but cannot relay a request). Every other default
#: the tests rely on is in the broker's code or set by the tests.
MINIMAL_CONFIG = {
    "REMOTE_WORKLOAD_NAME": "BrokerWorkload",
    "REMOTE_WORKLOAD_MODULE_PATH": "../broker-workload/websocketRequests",
    "CLIENT_WORKLOAD_NAME": "BrokerClientRequestWorkload",
    "CLIENT_WORKLOAD_MODULE_PATH": "../broker-workload/clientLocalRequests",
}


def prepare(cache_dir: Path = CACHE_DIR, reference_dir: Path = REFERENCE_DIR) -> None:
    """Put a config.default.json in ``cache_dir``, next to node_modules (idempotent; not
    committed): the reference copy when ``reference_dir`` has one, else :data:`MINIMAL_CONFIG`."""
    target = cache_dir / "config.default.json"
    source = reference_dir / "config.default.json"
    if source.is_file():
        content = source.read_bytes()
    elif target.is_file():
        return  # the reference copy or an earlier empty one: either runs
    else:
        content = json.dumps(MINIMAL_CONFIG, indent=2).encode() + b"\n"
    if not target.exists() or target.read_bytes() != content:
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(content)
        tmp.replace(target)


def clone_root(workdir: Path) -> Path:
    """A directory laid out like a fresh clone's ``.cache/snyk-broker`` with no ``../shared``:
    ``node_modules`` linked to the real install, config.default.json as :func:`prepare` writes
    it there. Pass it as ``root`` to run the broker from it."""
    root = workdir / "clone-cache"
    root.mkdir(parents=True, exist_ok=True)
    link = root / "node_modules"
    if not link.exists():
        link.symlink_to(CACHE_DIR / "node_modules", target_is_directory=True)
    prepare(root, workdir / "no-shared-reference")
    return root


#: ``CRBROKER_INTEROP_AS_CLONE=1`` runs every real broker of the session from a clone root
#: (no ``../shared``): what a fresh clone's ``make test`` does, on a machine that has it
AS_CLONE = os.environ.get("CRBROKER_INTEROP_AS_CLONE", "") not in ("", "0")
_session_root: list[Path] = []


def _command(role: str, root: Path | None) -> list[str]:
    if root is None and AS_CLONE:
        if not _session_root:
            _session_root.append(clone_root(Path(tempfile.mkdtemp(prefix="crb-clone-"))))
        root = _session_root[0]
    if root is None:
        return [str(require_snyk_broker()), role]
    require_snyk_broker()
    # node resolves symlinks by default, and the broker looks for its config.default.json above
    # its own real path; with the links preserved it finds the one in ``root``
    script = root / "node_modules" / "snyk-broker" / "dist" / "cli" / "index.js"
    return ["node", "--preserve-symlinks", "--preserve-symlinks-main", str(script), role]


def stock_accept_path() -> Path:
    """The stock container-registry-agent filter, as the npm package ships it (read-only)."""
    return STOCK_CRA_ACCEPT


def server_accept(upstream_origin: str) -> dict[str, Any]:
    """Server-side rules: client callbacks go to ``upstream_origin`` (the test's 'Snyk API')."""
    return {
        "private": [
            {"method": "POST", "path": "/api/v1/*", "origin": upstream_origin},
            {"method": "POST", "path": "/api/v2/*", "origin": upstream_origin},
            {"method": "POST", "path": "/v1/*", "origin": upstream_origin},
            {"method": "POST", "path": "/v2/*", "origin": upstream_origin},
        ],
        "public": [{"method": "any", "path": "/*"}],
    }


def _base_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
    env.update(_QUIET_ENV)
    if extra:
        env.update(extra)
    return env


def _write_accept(workdir: Path, name: str, accept: Mapping[str, Any] | Path | str) -> str:
    if isinstance(accept, Path | str):
        return str(Path(accept).resolve())
    path = workdir / name
    path.write_text(json.dumps(accept, indent=2))
    return str(path)


@dataclass
class SnykBroker(Service):
    """One running snyk-broker process; its ``name`` is the role, "server" or "client"."""

    @property
    def role(self) -> str:
        return self.name

    def restart(self, *, timeout: float = 30.0) -> None:
        """Stop and start again on the same port with the same settings."""
        self.process.stop()
        self.process.start()
        if self.role == "server":
            _wait_or_fail(self, f"{self.url}/healthcheck", timeout)


def _wait_or_fail(broker: SnykBroker, url: str, timeout: float) -> None:
    try:
        wait_for_http(url, timeout=timeout, process=broker.process)
    except TimeoutError:
        raise broker.process.failed(f"snyk-broker {broker.role}", "did not become ready") from None


def start_server(
    workdir: Path,
    *,
    accept: Mapping[str, Any] | Path | str,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    log_level: str = "info",
    timeout: float = 30.0,
    wait: bool = True,
    root: Path | None = None,
) -> SnykBroker:
    """Start ``broker server`` on a free loopback port; returns once ``/healthcheck`` answers
    (``wait=False``: once it listens, e.g. when the server speaks HTTPS and the caller waits
    itself). ``root``: run from a :func:`clone_root` instead of the install itself.

    Without ``port`` it binds port 0; it logs ``"port":"0"``, so the port comes from the
    kernel's socket table and is then set in its environment (a restart keeps it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    full_env = _base_env(
        {
            "BROKER_TYPE": "server",
            "PORT": str(port or 0),
            "ACCEPT": _write_accept(workdir, "server-accept.json", accept),
            "LOG_LEVEL": log_level,
            **(env or {}),
        }
    )
    log_path = workdir / f"snyk-server-{port or uuid.uuid4().hex[:8]}.log"
    proc = ServerProcess(_command("server", root), env=full_env, cwd=workdir, log_path=log_path)
    proc.start()
    if not port:
        port = wait_for_listening_port(proc, name="snyk-broker server", timeout=timeout)
        full_env["PORT"] = str(port)
        proc.env = full_env
    broker = SnykBroker("server", port, proc, full_env)
    if wait:
        _wait_or_fail(broker, f"{broker.url}/healthcheck", timeout)
    return broker


def start_client(
    workdir: Path,
    *,
    token: str,
    server_url: str,
    accept: Mapping[str, Any] | Path | str | None = None,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    log_level: str = "info",
    wait_connected: bool = True,
    timeout: float = 30.0,
    root: Path | None = None,
) -> SnykBroker:
    """Start the real ``broker client`` (classic); by default wait until its sockets are open.
    ``root``: run from a :func:`clone_root` instead of the install itself. Without ``port``
    one is chosen with :func:`on_a_free_port`: its own URL (``BROKER_CLIENT_URL``) is a
    setting, so it cannot bind port 0."""
    if port is None:
        return on_a_free_port(
            lambda chosen: start_client(
                workdir,
                token=token,
                server_url=server_url,
                accept=accept,
                env=env,
                port=chosen,
                log_level=log_level,
                wait_connected=wait_connected,
                timeout=timeout,
                root=root,
            )
        )
    workdir.mkdir(parents=True, exist_ok=True)
    full_env = _base_env(
        {
            "BROKER_TYPE": "client",
            "BROKER_TOKEN": token,
            "BROKER_SERVER_URL": server_url,
            "BROKER_CLIENT_URL": f"http://127.0.0.1:{port}",
            "PORT": str(port),
            "BROKER_VERSION": SNYK_CLIENT_VERSION,
            "ACCEPT": _write_accept(workdir, "client-accept.json", accept or stock_accept_path()),
            "LOG_LEVEL": log_level,
            **(env or {}),
        }
    )
    proc = ServerProcess(
        _command("client", root),
        env=full_env,
        cwd=workdir,
        log_path=workdir / f"snyk-client-{port}.log",
    )
    broker = SnykBroker("client", port, proc.start(), full_env)
    # /healthcheck answers 200 only once a socket is open, 500 before
    if wait_connected:
        _wait_or_fail(broker, f"{broker.url}/healthcheck", timeout)
    else:  # listening, or StartFailed with its log (e.g. its port was taken meanwhile)
        wait_for_listening_port(proc, name="snyk-broker client", timeout=timeout)
    return broker


def connection_status(server_url: str, token: str) -> tuple[int, Any]:
    """``GET /connection-status/<token>`` on a broker server: (status, parsed JSON)."""
    try:
        with urllib.request.urlopen(f"{server_url}/connection-status/{token}", timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


#: what a connection-status probe may meet while the server starts
RETRIED = (AssertionError, OSError, ValueError)


def wait_for_clients(
    server_url: str, token: str, count: int, *, timeout: float = 30.0
) -> list[Any]:
    """Block until the server lists at least ``count`` identified sockets for ``token``."""

    def listed() -> list[Any]:
        status, body = connection_status(server_url, token)
        assert status == 200 and len(body.get("clients", [])) >= count, (
            f"server did not list {count} clients for the token: {body!r}"
        )
        return list(body["clients"])

    try:
        return eventually(listed, timeout=timeout, interval=0.1, retry_on=RETRIED)
    except RETRIED as exc:
        raise TimeoutError(str(exc)) from None


@contextlib.contextmanager
def running_server(workdir: Path, **kwargs: Any) -> Iterator[SnykBroker]:
    broker = start_server(workdir, **kwargs)
    try:
        yield broker
    finally:
        broker.stop()


@contextlib.contextmanager
def running_client(workdir: Path, **kwargs: Any) -> Iterator[SnykBroker]:
    broker = start_client(workdir, **kwargs)
    try:
        yield broker
    finally:
        broker.stop()
