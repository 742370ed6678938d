"""``broker-server``: read settings, configure logging, serve."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from broker_server.server import build_app
from broker_server.settings import SettingsError, load_settings
from shared.logging import configure_logging, get_logger


def main() -> None:
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
    web.run_app(
        app,
        loop=_new_loop(),
        host=settings.BROKER_SERVER_HOST,
        port=settings.PORT,
        print=None,
        access_log=None,
        handle_signals=True,
    )


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed: fewer microseconds per relayed request."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


if __name__ == "__main__":
    main()
