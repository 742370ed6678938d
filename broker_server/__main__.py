"""``broker-server``: read settings, configure logging, serve."""

from __future__ import annotations

import asyncio
import signal
import sys

from aiohttp import web

from broker_server.server import build_app
from broker_server.settings import Settings, SettingsError, load_settings
from shared.command_line import standard_options
from shared.logging import configure_logging, get_logger
from shared.port_file import bound_port, write_port_file

HELP = """\
usage: broker-server [--help] [--version]

The broker server of crbroker (the upstream side): accepts broker clients' websockets, relays
/broker/<token>/... requests to them and their callbacks to UPSTREAM_URL.

Configured by environment variables: BROKER_TOKENS or BROKER_TOKEN_FILE, PORT, UPSTREAM_URL
or ACCEPT, MINIMAL_SUPPORTED_BROKER_VERSION, RECONNECT_GRACE_MS, CACHE_EXPIRY,
SOCKET_PING_INTERVAL, SOCKET_PING_TIMEOUT, LOG_LEVEL (see README.md). A missing or invalid
setting stops start-up with exit code 2 and one line naming it.

options:
  -h, --help     show this help and exit
  -V, --version  show the version and exit"""


def main(argv: list[str] | None = None) -> None:
    answered = standard_options("broker-server", sys.argv[1:] if argv is None else argv, HELP)
    if answered is not None:
        sys.exit(answered)
    try:
        settings, rules, tokens = load_settings()
    except SettingsError as exc:
        print(f"broker-server: invalid settings: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.LOG_LEVEL, service="broker-server", debug=settings.debug)
    log = get_logger("broker_server")
    app = build_app(settings, rules, tokens)
    log.info(
        "broker server starting",
        port=settings.PORT,
        tokens=len(tokens),
        accept_rules=settings.ACCEPT or ("default" if rules is not None else None),
    )
    if rules is None:
        log.warning(
            "no accept rules (ACCEPT / UPSTREAM_URL unset): every client callback is refused"
        )
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_serve(app, settings))
    finally:
        loop.close()


async def _serve(app: web.Application, settings: Settings) -> None:
    """Listen until SIGTERM/SIGINT, then shut down as ``web.run_app`` would."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.BROKER_SERVER_HOST, settings.PORT).start()
        port = bound_port(runner.addresses, settings.PORT)
        get_logger("broker_server").info(
            "broker server listening", host=settings.BROKER_SERVER_HOST, port=port
        )
        write_port_file(settings.PORT_FILE, {"PORT": port})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed: fewer microseconds per relayed request."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


if __name__ == "__main__":
    main()
