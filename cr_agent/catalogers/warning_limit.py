"""Keep per-file warnings readable: a garbled 60 MB file must not yield a million lines."""

from __future__ import annotations

MAX_WARNINGS_PER_FILE = 10


def limit_warnings(path: str, warnings: list[str], limit: int = MAX_WARNINGS_PER_FILE) -> list[str]:
    """The first ``limit`` warnings about ``path`` and one line counting the rest."""
    if len(warnings) <= limit:
        return warnings
    return [*warnings[:limit], f"{path}: {len(warnings) - limit} more warnings not shown"]
