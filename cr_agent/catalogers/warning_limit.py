"""Keep per-file warnings readable and bounded: a garbled 60 MB file must not yield (or hold
in memory) a million lines."""

from __future__ import annotations

from collections.abc import Iterable

MAX_WARNINGS_PER_FILE = 10


class WarningLog(list[str]):
    """The warnings about one file: keeps the first ``limit``, only counts the rest."""

    def __init__(self, path: str, limit: int = MAX_WARNINGS_PER_FILE) -> None:
        super().__init__()
        self.path = path
        self.limit = limit
        self.dropped = 0

    def append(self, warning: str) -> None:
        if len(self) < self.limit:
            super().append(warning)
        else:
            self.dropped += 1

    def extend(self, warnings: Iterable[str]) -> None:
        for warning in warnings:
            self.append(warning)
        if isinstance(warnings, WarningLog):
            self.dropped += warnings.dropped

    def lines(self) -> list[str]:
        """The kept warnings, plus one line counting those not kept."""
        if not self.dropped:
            return list(self)
        return [*self, f"{self.path}: {self.dropped} more warnings not shown"]


def limit_warnings(path: str, warnings: list[str], limit: int = MAX_WARNINGS_PER_FILE) -> list[str]:
    """The first ``limit`` warnings about ``path`` and one line counting the rest."""
    if isinstance(warnings, WarningLog):
        return warnings.lines()
    log = WarningLog(path, limit)
    log.extend(warnings)
    return log.lines()
