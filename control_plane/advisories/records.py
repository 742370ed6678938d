"""The normalised advisory: what every reader (OSV, Alpine secdb, Debian tracker) returns.

A record says which source packages of which distro release it affects and from which
version on they are fixed. Readers never raise on bad input: a record they cannot use becomes
a :class:`Skipped` naming the record and the field.
"""

from __future__ import annotations

from typing import NamedTuple


class Stream(NamedTuple):
    """A distro release line that advisories are written for: ("debian", "12")."""

    family: str  # "debian", "ubuntu", "alpine", "rhel", "rocky", "almalinux", "sles", ...
    release: str  # "12", "3.20", "9", "15.5"; "" for rolling distros (Wolfi, Chainguard)

    def __str__(self) -> str:
        return f"{self.family} {self.release}".strip()


class Severity(NamedTuple):
    """One severity statement: a CVSS vector, or the distro's own word."""

    kind: str  # "CVSS_V2" | "CVSS_V3" | "CVSS_V4" | "distro"
    value: str  # the vector, or the rating as written ("high", "Important", "unimportant")


class Affected(NamedTuple):
    """One package of one release an advisory speaks about.

    ``fixed`` None means no fix exists (unfixed): every installed version is affected
    from ``introduced`` on (None: from the first version).
    """

    ecosystem: str  # as written in the source, e.g. "Debian:12", "Alpine:v3.20"
    stream: Stream
    package: str  # usually the source package name
    fixed: str | None
    introduced: str | None = None
    last_affected: str | None = None
    severity: tuple[Severity, ...] = ()  # statements that apply to this package only


class Advisory(NamedTuple):
    """One advisory; (source, scope, id) identifies it across imports.

    ``scope`` separates records that share an id within one source: Alpine's secdb repeats a
    CVE in every release's and repository's file (``v3.20/main``), each with its own fixes.
    """

    id: str
    source: str  # "osv" | "alpine-secdb" | "debian-tracker"
    affected: tuple[Affected, ...]
    aliases: tuple[str, ...] = ()
    modified: str | None = None  # RFC 3339 as written; None where the format has none
    published: str | None = None
    withdrawn: str | None = None
    summary: str = ""
    severity: tuple[Severity, ...] = ()
    scope: str = ""


class Skipped(NamedTuple):
    """A record that was not imported, and why: ``where`` names the record, ``field`` the part."""

    where: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.reason}"


class ReadOutcome:
    """Advisories read from some input plus the records skipped on the way."""

    __slots__ = ("advisories", "skipped")

    def __init__(self) -> None:
        self.advisories: list[Advisory] = []
        self.skipped: list[Skipped] = []

    @classmethod
    def failed(cls, where: str, field: str, reason: str) -> ReadOutcome:
        """An outcome of nothing read but one skipped input."""
        outcome = cls()
        outcome.skipped.append(Skipped(where, field, reason))
        return outcome

    def extend(self, other: ReadOutcome) -> None:
        self.advisories.extend(other.advisories)
        self.skipped.extend(other.skipped)
