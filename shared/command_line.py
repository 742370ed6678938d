"""The options every crbroker command answers before reading any setting: help and version."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from shared.version import version_line


def standard_options(
    command: str,
    args: Sequence[str],
    help_text: str,
    version_detail: Callable[[], str] | None = None,
    *,
    extra_args: bool = False,
) -> int | None:
    """Answer ``--help``/``-h`` and ``--version``/``-V``; the exit code when answered, else None.

    Unless ``extra_args``, any other argument is a usage error (exit 2, one line on stderr).
    """
    if args and args[0] in ("-h", "--help"):
        print(help_text)
        return 0
    if args and args[0] in ("-V", "--version"):
        print(version_line(command, version_detail() if version_detail else ""))
        return 0
    if args and not extra_args:
        print(f"{command}: unknown argument {args[0]!r} (see --help)", file=sys.stderr)
        return 2
    return None
