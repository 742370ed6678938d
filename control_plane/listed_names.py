"""The names an agent lists, as the control plane takes them.

The customer's agent (and whatever answers in its place) is not trusted: a repository or tag
it lists becomes a target or a project, so a name the database cannot store, or that no
registry would hand out, is passed over instead of failing the whole listing. Only what
cannot be stored or shown is refused: something that is not a string, an empty name, control
characters (NUL among them: PostgreSQL's text refuses it), and names over the columns' length.
Each listing that passes names over says so once in the log, naming a few (host names and
image names are not secrets).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeGuard

import structlog

#: the longest repository and tag the targets and projects tables hold
MAX_REPOSITORY = 500
MAX_TAG = 300
#: the longest digest stored (a sha512 digest, 135 characters, is taken as unknown)
MAX_DIGEST = 100
#: the OCI image spec's digest grammar: ``algorithm:encoded``
DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")

log = structlog.get_logger(__name__)


def name_fault(value: object, *, most: int) -> str | None:
    """Why ``value`` cannot be a stored name, or None when it can."""
    if not isinstance(value, str):
        return f"not a string ({type(value).__name__})"
    if not value:
        return "empty"
    if len(value) > most:
        return f"longer than {most} characters"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "holds control characters"
    return None


def listed_digest(value: object) -> str | None:
    """A listed digest the control plane can store, or None (then the tag's digest is unknown)."""
    if isinstance(value, str) and len(value) <= MAX_DIGEST and DIGEST.fullmatch(value):
        return value
    return None


class PassedOver:
    """Collects the names one listing passes over; :meth:`report` logs them once."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.count = 0
        self.examples: list[str] = []

    def repositories(self, names: Iterable[object]) -> list[str]:
        return [n for n in names if self._keep(n, None, most=MAX_REPOSITORY)]

    def tags(self, repository: str, tags: Iterable[object]) -> list[str]:
        return [t for t in tags if self._keep(t, repository, most=MAX_TAG)]

    def tag(self, tag: object, repository: str) -> TypeGuard[str]:
        return self._keep(tag, repository, most=MAX_TAG)

    def _keep(self, value: object, repository: str | None, *, most: int) -> TypeGuard[str]:
        fault = name_fault(value, most=most)
        if fault is None:
            return True
        self.count += 1
        if len(self.examples) < 5:
            shown = repr(value)[:100]
            self.examples.append(f"{repository}:{shown}" if repository else shown)
            self.examples[-1] += f" ({fault})"
        return False

    def report(self) -> None:
        if self.count:
            log.warning(
                "listed names passed over",
                registry=self.where,
                count=self.count,
                examples=self.examples,
            )
