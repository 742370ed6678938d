"""``crbroker-server``: the broker relay and the control plane, in one process or apart.

``crbroker-server`` (mode ``all``, the default): the relay listens on ``PORT`` for broker
clients and for ``/broker/<token>/...`` calls; the control plane listens on
``CONTROL_PLANE_PORT`` and is the relay's upstream (``UPSTREAM_URL`` defaults to it), so
the agents' callbacks reach it the way they reach Snyk. The control plane asks agents to scan
over HTTP through the relay, as Snyk's backend does; the relay stays a relay. The broker
tokens it admits are those of the brokered integrations, kept in step with the database.

``crbroker-server relay`` runs only the relay (the broker-server's settings; with a database
configured it admits the integrations' tokens too). ``crbroker-server control-plane`` runs
only the control plane: several replicas may share one PostgreSQL (``DATABASE_URL``) and
drain one scan queue; ``BROKER_SERVER_URL`` names the relay they call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from broker_server.server import SERVER_KEY
from broker_server.server import build_app as build_relay_app
from broker_server.settings import SettingsError as RelaySettingsError
from broker_server.settings import load_settings as load_relay_settings
from broker_server.tokens import TokenRegistry
from control_plane.api import agent_callbacks, container_import, setup_api
from control_plane.api import imports as imports_api
from control_plane.bootstrap import open_control_plane
from control_plane.console.app import setup_console
from control_plane.db import Database
from control_plane.encryption import SecretBox, SecretKeyError
from control_plane.integrations.registry_agent import RegistryAgent
from control_plane.models import Integration
from control_plane.queue.dispatch import Dispatcher
from control_plane.server_settings import (
    ServerSettings,
    ServerSettingsError,
    load_server_settings,
)
from control_plane.settings import SettingsError as DomainSettingsError
from control_plane.settings import load_settings as load_domain_settings
from control_plane.sync.scheduler import SyncScheduler
from shared.logging import configure_logging, get_logger, register_secrets
from shared.port_file import bound_port, listen_socket, write_port_file

log = get_logger("control_plane.server")

#: agent results are split below 10 MB; the relay forwards up to 21 MB
MAX_BODY = 32 * 1024 * 1024


def package_version() -> str:
    try:
        return version("crbroker")
    except PackageNotFoundError:
        return "0+unknown"


class StartupError(Exception):
    """A setting or the database is unusable; the message names which."""


# --------------------------------------------------------------------------- control plane


def build_control_plane_app(
    database: Database,
    box: SecretBox,
    dispatcher: Dispatcher,
    scheduler: SyncScheduler | None = None,
) -> web.Application:
    """cp-core's REST and v1 API, the import/re-test views, the agents' callbacks, and the
    web console (``/console``)."""
    app = web.Application(client_max_size=MAX_BODY)
    # one way to the agents for the API and the console: their buttons are the API's calls
    agent = RegistryAgent(dispatcher.settings, box, dispatcher.broker_url)
    setup_api(app, database, box, agent=agent)
    imports_api.add_routes(app.router)
    app[imports_api.WAKE] = dispatcher.wake
    if scheduler is not None:
        app[container_import.WAKE] = scheduler.wake
    agent_callbacks.add_routes(app, database.sessions, box)
    setup_console(app, database, box, agent, dispatcher.wake)
    return app


# --------------------------------------------------------------------------- relay tokens


class TokenSync:
    """Keeps the relay admitting exactly the broker tokens of the brokered integrations."""

    def __init__(
        self, registry: TokenRegistry, sessions: async_sessionmaker[AsyncSession], box: SecretBox
    ) -> None:
        self.registry = registry
        self.sessions = sessions
        self.box = box
        #: integration id -> (token hash, token) admitted because of it
        self.admitted: dict[str, tuple[str, str]] = {}

    async def sync(self) -> None:
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(
                        Integration.id,
                        Integration.broker_token_hash,
                        Integration.broker_token_encrypted,
                    ).where(
                        Integration.has_broker.is_(True),
                        Integration.is_active.is_(True),
                        Integration.broker_token_encrypted.is_not(None),
                    )
                )
            ).all()
        seen = set()
        for ident, digest, sealed in rows:
            key = str(ident)
            seen.add(key)
            known = self.admitted.get(key)
            if known is not None and known[0] == digest:
                continue
            if known is not None:
                self.registry.discard(known[1])
            try:
                token = self.box.decrypt(sealed or b"").decode()
            except SecretKeyError as exc:
                log.error(
                    "broker token of an integration unreadable", integration=key, error=str(exc)
                )
                continue
            self.registry.add(token)
            self.admitted[key] = (digest or "", token)
            log.info("relay admits the broker token of an integration", integration=key)
        for key in set(self.admitted) - seen:
            self.registry.discard(self.admitted.pop(key)[1])
            log.info("relay no longer admits the broker token of an integration", integration=key)

    async def run(self, every: float) -> None:
        while True:
            try:
                await self.sync()
            except Exception as exc:  # the database may be away for a moment
                log.error("broker token sync failed", error=repr(exc)[:300])
            await asyncio.sleep(every)


# --------------------------------------------------------------------------- process


@dataclass
class Running:
    runners: list[web.AppRunner] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closers: list[object] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)


async def _site(runner: web.AppRunner, host: str, port: int, name: str) -> int:
    """Start ``runner`` on ``host:port``; returns the port bound (``port`` may be 0)."""
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        raise StartupError(f"{name}: cannot listen on {host}:{port}: {exc.strerror}") from None
    return bound_port(runner.addresses, port)


def _listen(host: str, port: int, name: str) -> socket.socket:
    try:
        return listen_socket(host, port)
    except OSError as exc:
        raise StartupError(f"{name}: cannot listen on {host}:{port}: {exc.strerror}") from None


async def serve(
    mode: str, settings: ServerSettings, environ: Mapping[str, str], stop: asyncio.Event
) -> None:
    running = Running()
    database: Database | None = None
    relay_registry: TokenRegistry | None = None
    try:
        box: SecretBox | None = None
        if mode in ("all", "control-plane") or (mode == "relay" and environ.get("DATABASE_URL")):
            try:
                plane = await open_control_plane(load_domain_settings(environ))
            except (DomainSettingsError, SecretKeyError) as exc:
                raise StartupError(str(exc)) from None
            except (OSError, SQLAlchemyError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else ""
                raise StartupError(
                    f"DATABASE_URL: the database is unusable: {type(exc).__name__}: {first}"[:500]
                ) from None
            database, box = plane.db, plane.box
        relay_port: int | None = None
        ports: dict[str, int] = {}
        if mode in ("all", "control-plane"):
            # bound first: the relay's default upstream and the agents' callbacks need its
            # port, and the control plane needs the relay's (CONTROL_PLANE_PORT may be 0)
            api_socket = _listen(
                settings.CONTROL_PLANE_HOST, settings.CONTROL_PLANE_PORT, "CONTROL_PLANE_PORT"
            )
            running.sockets.append(api_socket)
            ports["CONTROL_PLANE_PORT"] = api_socket.getsockname()[1]
        if mode in ("all", "relay"):
            relay_env = dict(environ)
            if mode == "all":
                relay_env.setdefault(
                    "UPSTREAM_URL", f"http://127.0.0.1:{ports['CONTROL_PLANE_PORT']}"
                )
            try:
                relay_settings, rules, tokens = load_relay_settings(
                    relay_env, require_tokens=database is None
                )
            except RelaySettingsError as exc:
                raise StartupError(str(exc)) from None
            relay_app = build_relay_app(
                relay_settings, rules, tokens, relay_settings.variables(relay_env)
            )
            relay_registry = relay_app[SERVER_KEY].tokens
            runner = web.AppRunner(relay_app, access_log=None)
            running.runners.append(runner)
            relay_port = await _site(
                runner, relay_settings.BROKER_SERVER_HOST, relay_settings.PORT, "PORT"
            )
            ports["PORT"] = relay_port
            log.info(
                "relay listening",
                host=relay_settings.BROKER_SERVER_HOST,
                port=relay_port,
                upstream=relay_settings.UPSTREAM_URL,
            )
        if database is not None and box is not None and relay_registry is not None:
            sync = TokenSync(relay_registry, database.sessions, box)
            await sync.sync()
            running.tasks.append(asyncio.create_task(sync.run(settings.TOKEN_SYNC_SECONDS)))
        if mode in ("all", "control-plane"):
            assert database is not None and box is not None
            broker_url = settings.BROKER_SERVER_URL or (
                f"http://127.0.0.1:{relay_port}" if relay_port else None
            )
            if broker_url is None:
                log.warning(
                    "BROKER_SERVER_URL is not set: scans of brokered integrations will fail"
                )
            dispatcher = Dispatcher(
                database.sessions,
                box,
                settings,
                broker_url=broker_url,
                callback_base=settings.callback_base(ports["CONTROL_PLANE_PORT"]),
            )
            scheduler = SyncScheduler(database.sessions, box, settings, broker_url=broker_url)
            app = build_control_plane_app(database, box, dispatcher, scheduler)
            runner = web.AppRunner(app, access_log=None)
            running.runners.append(runner)
            await runner.setup()
            await web.SockSite(runner, api_socket).start()
            dispatcher.start()
            running.closers.append(dispatcher)
            scheduler.start()
            running.closers.append(scheduler)
            log.info(
                "control plane listening",
                host=settings.CONTROL_PLANE_HOST,
                port=ports["CONTROL_PLANE_PORT"],
                worker=settings.worker_id,
                database=database.dialect,
                broker=broker_url,
            )
        write_port_file(settings.PORT_FILE, ports)
        await stop.wait()
    finally:
        for task in running.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for closer in running.closers:
            await closer.close()  # type: ignore[attr-defined]
        for runner in reversed(running.runners):
            await runner.cleanup()
        for sock in running.sockets:
            sock.close()
        if database is not None:
            await database.close()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(mode: str, environ: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    try:
        settings = load_server_settings(env)
    except ServerSettingsError as exc:
        print(f"crbroker-server: invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(env.get("LOG_LEVEL", "info"), service="crbroker-server")
    register_secrets(settings.CR_AGENT_SECRET)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(serve(mode, settings, env, stop))
    except StartupError as exc:
        print(f"crbroker-server: cannot start: {exc}", file=sys.stderr)
        return 2
    finally:
        loop.close()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crbroker-server",
        description="crbroker's server side: the broker relay and the control plane "
        "(orgs, integrations, targets, projects, scans in Snyk's REST shape). Settings come "
        "from the environment (PORT, CONTROL_PLANE_PORT, DATABASE_URL, CRBROKER_DATA_DIR, ...).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("all", help="relay and control plane in one process (the default)")
    sub.add_parser("relay", help="only the broker relay")
    sub.add_parser("control-plane", help="only the control plane (replicas may share PostgreSQL)")
    sub.add_parser(
        "token", help="API tokens: token create [--user NAME] [--org SLUG] [--name LABEL] [--admin]"
    )
    sub.add_parser("user", help="console users: user create NAME [--admin] (password on stdin)")
    sub.add_parser(
        "advisories",
        help="advisories import PATH...: OSV JSON / all.zip, Alpine secdb or Debian tracker "
        "files; every project's latest scan is matched again",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] in (["token"], ["user"]):
        from control_plane import cli

        # stdout carries the token alone; log lines go to stderr
        configure_logging(
            os.environ.get("LOG_LEVEL", "warning"), service="crbroker-server", stream=sys.stderr
        )
        return cli.run(given)
    if given[:1] == ["advisories"]:
        from control_plane.advisories import cli as advisories_cli

        configure_logging(
            os.environ.get("LOG_LEVEL", "warning"), service="crbroker-server", stream=sys.stderr
        )
        return advisories_cli.run(given[1:])
    args = _parser().parse_args(given)
    mode = args.command or os.environ.get("CRBROKER_MODE") or "all"
    return run(mode)


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
