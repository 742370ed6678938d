"""``cr-agent``: a tiny dispatcher; each subcommand registers one line here."""

from __future__ import annotations

import importlib
import sys

#: subcommand -> "module:function" taking argv (the rest of the command line) and returning an exit code
COMMANDS = {
    "scan": "cr_agent.cli:main",
    "serve": "cr_agent.service.app:main_serve",
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        print(f"usage: cr-agent {{{'|'.join(COMMANDS)}}} ...", file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    module, _, func = COMMANDS[args[0]].partition(":")
    return int(getattr(importlib.import_module(module), func)(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
