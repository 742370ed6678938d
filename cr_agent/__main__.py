"""``cr-agent``: a tiny dispatcher; each subcommand registers one line here."""

from __future__ import annotations

import importlib
import os
import sys

#: subcommand -> "module:function" taking argv (the rest of the command line) and returning an exit code
COMMANDS = {
    "scan": "cr_agent.cli:main",
    "serve": "cr_agent.service.app:main_serve",
}


HELP = """\
usage: cr-agent [--help] [--version] {scan,serve} ...

The container registry agent of crbroker.

commands:
  serve          run the agent's HTTP API (SNYK_PORT, HTTPS_CERT/HTTPS_KEY, CA_CERT, ...;
                 see README.md and docs/openapi.json)
  scan IMAGE     inventory one image and print its SBOM (cr-agent scan --help)

options:
  -h, --help     show this help and exit
  -V, --version  show the version and exit"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help", "-V", "--version"):
        from shared.command_line import standard_options

        return standard_options("cr-agent", args[:1], HELP) or 0
    if not args or args[0] not in COMMANDS:
        print(f"usage: cr-agent {{{'|'.join(COMMANDS)}}} ... (see --help)", file=sys.stderr)
        return 2
    module, _, func = COMMANDS[args[0]].partition(":")
    return int(getattr(importlib.import_module(module), func)(args[1:]) or 0)


def run() -> None:
    """The console script. A reader that goes away (``cr-agent scan ... | head``) makes a
    failed exit, not a traceback: the way out the Python documentation gives for SIGPIPE."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # the interpreter flushes stdout once more at exit; that must not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    run()
