"""Last line of defence: a bug in one reader costs one file, not the whole image scan.

The readers validate what they read and report damage as warnings; this only catches what
that validation missed, and says so in a warning that names the file and the exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def guarded(reader: str, path: str, read: Callable[[], T], fallback: T, warnings: list[str]) -> T:
    """``read()``; if it raised, ``fallback`` and a warning appended to ``warnings``."""
    try:
        return read()
    except Exception as exc:  # deliberately broad, see the module docstring
        warnings.append(f"{path}: {reader} reader failed unexpectedly: {type(exc).__name__}: {exc}")
        return fallback
