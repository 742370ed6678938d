"""crbroker: brokered container-registry scanning."""

from typing import Any


def __getattr__(name: str) -> Any:
    # ``from shared import __version__`` reads the installed metadata, on first use only
    if name == "__version__":
        from shared.version import package_version

        return package_version()
    raise AttributeError(f"module 'shared' has no attribute {name!r}")
