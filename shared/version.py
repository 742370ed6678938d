"""The one version string of the package, from its installed metadata (pyproject's ``version``).

Looked up on first use, not at import: ``importlib.metadata`` costs tens of milliseconds to
import, which the services pay once at start-up but ``cr-agent scan`` must not pay per scan.
"""

from __future__ import annotations

import functools

DISTRIBUTION = "crbroker"


@functools.cache
def package_version() -> str:
    """``crbroker``'s version; ``0+unknown`` when run from a tree that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0+unknown"


def version_line(command: str, detail: str = "") -> str:
    """What ``<command> --version`` prints."""
    return f"{command} {package_version()}{f' ({detail})' if detail else ''}"
