"""``broker-client``: read the environment, then run until SIGTERM/SIGINT.

A bad setting prints one line naming the variable and exits 2 (no traceback).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from broker_client.connection import ReconnectExhausted
from broker_client.settings import SettingsError, load_settings
from shared.command_line import standard_options
from shared.logging import configure_logging, get_logger, register_secrets

HELP = """\
usage: broker-client [--help] [--version]

The broker client of crbroker: opens a websocket to the broker server, lets through what its
accept filter allows to the container registry agent, adds this client's registry credentials
(CR_CREDENTIALS, built from the CR_* variables) and relays the agent's callbacks upstream.

Configured by environment variables (snyk-broker's names), among them:
  BROKER_TOKEN, BROKER_SERVER_URL, BROKER_CLIENT_URL, PORT, CR_AGENT_URL,
  CR_TYPE, CR_BASE, CR_USERNAME, CR_PASSWORD (or CR_TOKEN, CR_ROLE_ARN, CR_REGION,
  CR_EXTERNAL_ID, or CR_CREDENTIALS), ACCEPT, BROKER_CLIENT_VALIDATION_URL, LOG_LEVEL,
  HTTPS_PROXY, NO_PROXY, BROKER_CLIENT_VAR_SUB_ALLOW, BROKER_DOWNSTREAM_MAX_CONNECTIONS.
See README.md ("Running it") for the full list. A missing or invalid setting stops start-up
with exit code 2 and one line naming it.

options:
  -h, --help     show this help and exit
  -V, --version  show the version and exit"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    answered = standard_options("broker-client", args, HELP, _version_detail)
    if answered is not None:
        return answered
    try:
        settings, rules = load_settings()
    except SettingsError as exc:
        # one line, whatever the underlying parser wrote (YAML errors span several lines)
        message = " ".join(str(exc).split())
        print(f"broker-client: invalid configuration: {message}", file=sys.stderr)
        return 2
    register_secrets(*settings.secret_values())
    configure_logging(settings.LOG_LEVEL, service="broker-client", debug=settings.debug)
    from broker_client.client import BrokerClient

    client = BrokerClient(settings, rules)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, client.stop)
        await client.run()

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(run())
    except ReconnectExhausted as exc:
        get_logger("broker_client").error("giving up", error=str(exc))
        return 1
    except OSError as exc:
        get_logger("broker_client").error("cannot start", error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


def _version_detail() -> str:
    from broker_client.settings import CLIENT_VERSION, PROTOCOL_VERSION

    return f"snyk-broker {PROTOCOL_VERSION} protocol; reports {CLIENT_VERSION}"


def _loop_factory() -> Any:
    """uvloop when installed: fewer microseconds per hop on every relayed request."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main())
