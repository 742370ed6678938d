"""Start crbroker's three services on loopback and talk to them the way the scanning service does.

Used by ``make demo``, the end-to-end tests and ``bench/agent.py``: ``broker-server``,
``broker-client`` and ``cr-agent serve`` run as real subprocesses (console scripts of this
environment, else ``python -m``), each on a free 127.0.0.1 port with its log in ``workdir``.
:class:`Stack` stops whatever it started, newest first, even when a later start fails.

Requests to the agent go through ``/broker/<token>/...`` on the server with
``authorization: ${CR_CREDENTIALS}`` + ``x-broker-var-sub: authorization``: the client fills
it in, so neither the server nor the upstream ever holds registry credentials. The agent
posts results to the ``BROKER_CLIENT_URL`` it was started with and answers only requests
carrying the ``CR_AGENT_SECRET`` it shares with the client (a new random one per stack).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from deploy.processes import (
    ServerProcess,
    on_a_free_port,
    start_reporting,
    wait_for_http,
)
from deploy.processes import (
    StartFailed as StartFailed,  # callers catch stack.StartFailed
)

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")

#: what the server passes upstream: the agent's callbacks (snyk's "Snyk API" paths)
CALLBACK_PATHS = ("/api/v1/*", "/api/v2/*", "/v1/*", "/v2/*", "/rest/*")


def command(script: str, module: str) -> list[str]:
    """The console script next to this interpreter, else ``python -m module``."""
    candidate = Path(sys.executable).with_name(script)
    if candidate.exists():
        return [str(candidate)]
    found = shutil.which(script)
    return [found] if found else [sys.executable, "-m", module]


def server_accept(upstream_url: str) -> dict[str, Any]:
    """Broker-server rules: callbacks go on to ``upstream_url``; callers may ask for anything."""
    return {
        "private": [{"method": "POST", "path": p, "origin": upstream_url} for p in CALLBACK_PATHS],
        "public": [{"method": "any", "path": "/*"}],
    }


def _base_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


@dataclass
class Service:
    """One started process listening on ``127.0.0.1:port``, with the environment it was given."""

    name: str
    port: int
    process: ServerProcess
    env: dict[str, str] = field(default_factory=dict)
    #: ``/healthcheck`` statuses that count as "up"
    ready: tuple[int, ...] = (200,)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def token(self) -> str:
        """The broker token a client was started with (empty for other services)."""
        return self.env.get("BROKER_TOKEN", "")

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def log_text(self) -> str:
        return self.process.log_text()

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_text()[-chars:]

    def stop(self) -> None:
        self.process.stop()

    def restart(self, *, timeout: float = 30.0) -> None:
        """Stop and start again on the same port; returns once ``/healthcheck`` answers."""
        self.process.stop()
        self.process.start()
        wait_for_http(f"{self.url}/healthcheck", timeout=timeout, ok=self.ready)


#: (argv, environment) of a service listening on the given port (0: one it chooses)
Spec = Callable[[int], tuple[list[str], dict[str, str]]]


@dataclass(frozen=True)
class Startup:
    """How long to wait for a service and what counts as up.

    ``ready`` are the ``/healthcheck`` statuses to wait for; ``wait=False`` returns once it
    listens; ``log`` names the log file in the work directory (``{name}`` and ``{port}``
    filled in).
    """

    timeout: float = 30.0
    ready: tuple[int, ...] = (200,)
    wait: bool = True
    log: str = "{name}.log"


def _start_once(
    name: str, spec: Spec, workdir: Path, port: int, startup: Startup, port_key: str
) -> Service:
    """Start on ``port`` (0: the service binds a free one and writes it to ``PORT_FILE``)."""
    argv, env = spec(port)
    by_port = "{port}" in startup.log and not port
    # a log named after a port not known yet is renamed once it is (the child's file stays)
    log_path = workdir / startup.log.format(name=name, port=port or uuid.uuid4().hex[:8])
    process, ports = start_reporting(
        argv, env=env, cwd=workdir, log_path=log_path, name=name, timeout=startup.timeout
    )
    # a restart binds the same ports again
    env.update({key: str(value) for key, value in ports.items()})
    process.env = env
    bound = ports[port_key]
    if by_port:
        process.log_path = log_path.replace(workdir / startup.log.format(name=name, port=bound))
    service = Service(name, bound, process, env, startup.ready)
    if not startup.wait:
        return service
    ready_url = f"{service.url}/healthcheck"
    try:
        wait_for_http(ready_url, timeout=startup.timeout, ok=startup.ready, process=process)
    except TimeoutError:
        raise process.failed(
            name, f"did not answer {ready_url} within {startup.timeout:g}s"
        ) from None
    except BaseException:
        service.stop()
        raise
    return service


def _start(
    name: str,
    spec: Spec,
    workdir: Path,
    port: int | None,
    startup: Startup | None = None,
    port_key: str = "PORT",
) -> Service:
    """Start on ``port``, or on a port the service binds itself (0) and reports."""
    workdir.mkdir(parents=True, exist_ok=True)
    return _start_once(name, spec, workdir, port or 0, startup or Startup(), port_key)


def new_agent_secret() -> str:
    """A fresh ``CR_AGENT_SECRET`` for one agent and the broker client in front of it."""
    return secrets.token_urlsafe(32)


def start_agent(
    workdir: Path,
    *,
    max_active: int = 1,
    port: int | None = None,
    callback_url: str | None = None,
    secret: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Service:
    """``cr-agent serve`` on 127.0.0.1; it holds no registry secret (they come per request).

    ``callback_url`` is the broker client's ``BROKER_CLIENT_URL`` (the only place the agent
    posts results to); ``secret`` its ``CR_AGENT_SECRET`` (a new one when not given; the
    service's ``env`` has it for the client).
    """
    agent_secret = secret or new_agent_secret()
    callback = {"BROKER_CLIENT_URL": callback_url} if callback_url else {}

    def spec(port: int) -> tuple[list[str], dict[str, str]]:
        return [*command("cr-agent", "cr_agent"), "serve"], _base_env(
            {
                "SNYK_PORT": str(port),
                "HOST": "127.0.0.1",
                "CR_AGENT_SECRET": agent_secret,
                **callback,
                "SPOOL_DIR": str(workdir / "agent-spool"),
                # each stack its own layer cache: no state shared between runs
                "LAYER_CACHE_DIR": str(workdir / "agent-layer-cache"),
                "MAX_ACTIVE_OPERATIONS": str(max_active),
                "CALLBACK_RETRY_SECONDS": "2",
                "LOG_LEVEL": "info",
                **(env or {}),
            }
        )

    return _start("cr-agent", spec, workdir, port, port_key="SNYK_PORT")


def start_agent_and_client(
    workdir: Path,
    *,
    token: str,
    server_url: str,
    registry: Mapping[str, str],
    max_active: int = 1,
    agent_env: Mapping[str, str] | None = None,
    client_env: Mapping[str, str] | None = None,
    startup: Startup | None = None,
) -> tuple[Service, Service]:
    """An agent and our broker client in front of it, paired as production pairs them: the
    agent calls back only to that client (``BROKER_CLIENT_URL``) and requires its secret."""

    def client(port: int, agent: Service) -> Service:
        return start_broker_client(
            workdir,
            token=token,
            server_url=server_url,
            agent_url=agent.url,
            registry=registry,
            port=port,
            agent_secret=agent.env["CR_AGENT_SECRET"],
            env=client_env,
            startup=startup,
        )

    return start_agent_calling_back(workdir, client, max_active=max_active, env=agent_env)


def start_agent_calling_back(
    workdir: Path, start_target: Callable[[int, Service], T], **agent_options: Any
) -> tuple[Service, T]:
    """An agent (:func:`start_agent` with ``agent_options``) and the service its results go
    to (``BROKER_CLIENT_URL``: a broker client, or a control plane for direct integrations).

    The one cycle: each must be told the other's URL before it starts. The agent binds a port
    itself; the target's is chosen first and ``start_target(port, agent)`` starts it there.
    If someone takes that port before the target binds it, both start again with a new one
    (:func:`on_a_free_port`).
    """

    def start(port: int) -> tuple[Service, T]:
        agent = start_agent(workdir, callback_url=f"http://127.0.0.1:{port}", **agent_options)
        try:
            return agent, start_target(port, agent)
        except BaseException:
            agent.stop()
            raise

    return on_a_free_port(start)


def start_broker_server(
    workdir: Path,
    *,
    token: str | None,
    upstream_url: str | None = None,
    accept: Mapping[str, Any] | None = None,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    startup: Startup | None = None,
) -> Service:
    """Our ``broker-server``, admitting ``token`` (a comma list; None: given in ``env``),
    passing callbacks on to ``upstream_url``; rules ``accept``, else :func:`server_accept`."""
    if accept is None:
        if upstream_url is None:
            raise ValueError("start_broker_server needs upstream_url or accept")
        accept = server_accept(upstream_url)
    workdir.mkdir(parents=True, exist_ok=True)
    accept_path = workdir / "server-accept.json"
    accept_path.write_text(json.dumps(accept, indent=2))
    optional = {"BROKER_TOKENS": token, "UPSTREAM_URL": upstream_url}

    def spec(port: int) -> tuple[list[str], dict[str, str]]:
        return command("broker-server", "broker_server"), _base_env(
            {
                "PORT": str(port),
                "BROKER_SERVER_HOST": "127.0.0.1",
                **{k: v for k, v in optional.items() if v is not None},
                "ACCEPT": str(accept_path),
                "LOG_LEVEL": "info",
                **(env or {}),
            }
        )

    return _start("broker-server", spec, workdir, port, startup)


@dataclass
class CrbrokerServer(Service):
    """``crbroker-server``: the relay on ``port``, the control plane on ``api_port``."""

    @property
    def api_port(self) -> int:
        return int(self.env["CONTROL_PLANE_PORT"])

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


def start_crbroker_server(
    workdir: Path,
    *,
    mode: str = "all",
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    startup: Startup | None = None,
) -> CrbrokerServer:
    """``crbroker-server`` (relay + control plane by default) with its data in ``workdir``.

    ``port`` is the relay's (mode "control-plane": the API's); the other listener binds a free
    port. The relay's upstream is the control plane of the same process.
    """
    data_dir = workdir / "crbroker-data"
    port_key = "CONTROL_PLANE_PORT" if mode == "control-plane" else "PORT"

    def spec(port: int) -> tuple[list[str], dict[str, str]]:
        api_port = port if mode == "control-plane" else 0
        return [*command("crbroker-server", "control_plane"), mode], _base_env(
            {
                "PORT": str(port),
                "BROKER_SERVER_HOST": "127.0.0.1",
                "CONTROL_PLANE_PORT": str(api_port),
                "CONTROL_PLANE_HOST": "127.0.0.1",
                "CRBROKER_DATA_DIR": str(data_dir),
                "SCAN_POLL_SECONDS": "0.5",
                "TOKEN_SYNC_SECONDS": "0.5",
                "LOG_LEVEL": "info",
                **(env or {}),
            }
        )

    service = _start("crbroker-server", spec, workdir, port, startup, port_key)
    return CrbrokerServer(service.name, service.port, service.process, service.env, service.ready)


def start_broker_client(
    workdir: Path,
    *,
    token: str,
    server_url: str,
    agent_url: str,
    registry: Mapping[str, str],
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    validation_path: str | None = "/systemcheck",
    startup: Startup | None = None,
    agent_secret: str | None = None,
) -> Service:
    """Our ``broker-client`` (CRA flavour); ``registry`` holds CR_TYPE, CR_BASE, CR_USERNAME, ...

    Ready when ``/healthcheck`` answers 200, i.e. once a socket to the server is open.
    ``/systemcheck`` checks credentials against ``validation_path`` on the agent (None: unset).
    ``agent_secret`` is the agent's ``CR_AGENT_SECRET``. Without ``port`` one is chosen with
    :func:`on_a_free_port`: the client's own URL (``BROKER_CLIENT_URL``, which requests and
    the agent's callbacks use) is part of its settings, so it cannot bind port 0.
    """
    validation = (
        {}
        if validation_path is None
        else {"BROKER_CLIENT_VALIDATION_URL": f"{agent_url}{validation_path}"}
    )
    secret = {"CR_AGENT_SECRET": agent_secret} if agent_secret else {}

    def spec(port: int) -> tuple[list[str], dict[str, str]]:
        return command("broker-client", "broker_client"), _base_env(
            {
                "BROKER_TOKEN": token,
                "BROKER_SERVER_URL": server_url,
                "BROKER_CLIENT_URL": f"http://127.0.0.1:{port}",
                "BROKER_CLIENT_LISTEN_HOST": "127.0.0.1",
                "PORT": str(port),
                "CR_AGENT_URL": agent_url,
                **validation,
                **secret,
                "BROKER_CLIENT_RECONNECT_MAX_DELAY": "2000",
                "LOG_LEVEL": "info",
                **registry,
                **(env or {}),
            }
        )

    if port is not None:
        return _start("broker-client", spec, workdir, port, startup)
    return on_a_free_port(lambda chosen: _start("broker-client", spec, workdir, chosen, startup))


def wait_for_connection(
    server_url: str, token: str, *, clients: int = 1, timeout: float = 30.0
) -> None:
    """Block until the server lists ``clients`` identified sockets for ``token``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(
                f"{server_url}/connection-status/{token}", timeout=5
            ) as resp:
                body = json.loads(resp.read() or b"null")
                if len(body.get("clients", [])) >= clients:
                    return
                last = body
        except urllib.error.HTTPError as exc:
            last = exc.code
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(
        f"broker server did not list {clients} client socket(s) within {timeout:g}s: {last!r}"
    )


# --------------------------------------------------------------------------- requests via the broker

#: what the scanning service sends so the client puts the credential blob in
CREDENTIAL_HEADERS = {"authorization": "${CR_CREDENTIALS}", "x-broker-var-sub": "authorization"}


def broker_request(
    server_url: str,
    token: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    credentials: bool = True,
    timeout: float = 60.0,
) -> tuple[int, Any]:
    """One request through ``/broker/<token><path>``: (status, parsed JSON or text)."""
    all_headers = dict(CREDENTIAL_HEADERS) if credentials else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["content-type"] = "application/json"
    all_headers.update(headers or {})
    request = urllib.request.Request(
        f"{server_url}/broker/{token}{path}", data=data, method=method, headers=all_headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def scan_body(
    images: Sequence[str], *, request_id: str | None = None, fmt: str = "cyclonedx-json"
) -> dict[str, Any]:
    """A ``POST /scan`` body; the agent posts the results to its own ``BROKER_CLIENT_URL``."""
    body: dict[str, Any] = {"images": list(images), "format": fmt}
    if request_id:
        body["requestId"] = request_id
    return body


def request_scan(server_url: str, token: str, images: Sequence[str], **kwargs: Any) -> str:
    """Ask the agent, through the broker, to scan ``images``; returns the job id."""
    status, answer = broker_request(
        server_url, token, "POST", "/scan", body=scan_body(images, **kwargs)
    )
    if status != 202 or not isinstance(answer, dict) or "jobId" not in answer:
        raise RuntimeError(f"POST /broker/<token>/scan answered {status}: {answer!r}"[:800])
    return str(answer["jobId"])


# --------------------------------------------------------------------------- the whole pair


@dataclass
class Stack:
    """Our server + client + agent for one token; stops everything it started."""

    workdir: Path
    upstream_url: str
    registry: Mapping[str, str]
    token: str = field(default_factory=lambda: str(uuid.uuid4()))
    max_active: int = 1
    agent_env: Mapping[str, str] | None = None
    services: list[Service] = field(default_factory=list)

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.server = start_broker_server(
            self.workdir, token=self.token, upstream_url=self.upstream_url
        )
        self.services.append(self.server)
        self.agent, self.client = start_agent_and_client(
            self.workdir,
            token=self.token,
            server_url=self.server.url,
            registry=self.registry,
            max_active=self.max_active,
            agent_env=self.agent_env,
        )
        self.services += [self.agent, self.client]
        wait_for_connection(self.server.url, self.token)

    def stop(self) -> None:
        while self.services:
            service = self.services.pop()
            with contextlib.suppress(Exception):
                service.stop()
