"""Which advisories affect which installed packages.

The key is the image's distro release (a :class:`Stream`) and the package's **source** name,
as trivy and grype match OS packages; the binary name is looked up too, for the feeds that
name binary rpms (Red Hat, SUSE, AlmaLinux, Rocky). A package is affected when its version
(the source version when the source name matched) is at or above ``introduced``, below
``fixed`` (or at most ``last_affected``) in the distro's version order, or when the advisory
has no fixed version at all (unfixed). Withdrawn advisories never match.

Build an :class:`AdvisoryIndex` once per set of advisories; matching an inventory is then one
dictionary look-up per package plus a few version comparisons.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import NamedTuple

from control_plane.advisories.ecosystems import scheme_for, stream_from_os_release
from control_plane.advisories.inventory import Inventory, InventoryPackage
from control_plane.advisories.records import Advisory, Affected, Stream
from control_plane.advisories.severity import LEVELS, UNKNOWN, Rating, rate
from control_plane.advisories.version_order import VersionError, compare

_CVE = re.compile(r"CVE-\d{4}-\d+")


class Issue(NamedTuple):
    advisory_id: str
    aliases: tuple[str, ...]
    advisory_source: str
    package_name: str
    package_version: str  # the installed binary package's version
    package_type: str
    matched_name: str  # the name the advisory uses (usually the source package)
    matched_version: str  # the version compared with the advisory's
    fixed_version: str | None
    severity: str  # critical | high | medium | low | unknown
    cvss_score: float | None
    cvss_vector: str | None
    layer_index: int | None
    layer_diff_id: str | None
    package_ref: str | None
    ecosystem: str
    summary: str

    @property
    def fixable(self) -> bool:
        return self.fixed_version is not None


class IssueCounts(NamedTuple):
    critical: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0
    unknown: int = 0
    fixable: int = 0

    @property
    def total(self) -> int:
        return self.critical + self.high + self.medium + self.low + self.unknown


class MatchResult(NamedTuple):
    stream: Stream | None
    issues: tuple[Issue, ...]
    counts: IssueCounts
    warnings: tuple[str, ...]


def count_issues(issues: Iterable[Issue]) -> IssueCounts:
    tally = dict.fromkeys((*LEVELS, UNKNOWN, "fixable"), 0)
    for issue in issues:
        tally[issue.severity] += 1
        if issue.fixable:
            tally["fixable"] += 1
    return IssueCounts(**tally)


def vulnerability_keys(advisory: Advisory) -> tuple[str, ...]:
    """The vulnerabilities an advisory is about: its CVEs (its id or aliases), else its id.

    The same CVE read from two feeds (Debian's OSV ``DEBIAN-CVE-…`` and the tracker's
    ``CVE-…``), or from a DSA that fixes several CVEs and the per-CVE records beside it, is
    then one issue, not two.
    """
    cves = tuple(dict.fromkeys(x for x in (advisory.id, *advisory.aliases) if _CVE.fullmatch(x)))
    return cves or (advisory.id,)


@functools.lru_cache(maxsize=262144)
def _order(scheme: str, left: str, right: str) -> int:
    # Feeds repeat fixed versions (one DSA fixes many CVEs at one version; a kernel release
    # fixes hundreds) and stored inventories repeat installed ones, so most comparisons of a
    # match, and nearly all of a re-match, are answered here.
    return compare(scheme, left, right)


def _affects(scheme: str, installed: str, entry: Affected) -> bool:
    """True if ``installed`` lies in ``entry``'s affected interval (VersionError if unordered)."""
    if entry.introduced is not None and _order(scheme, installed, entry.introduced) < 0:
        return False
    if entry.fixed is not None and _order(scheme, installed, entry.fixed) >= 0:
        return False
    return not (
        entry.last_affected is not None and _order(scheme, installed, entry.last_affected) > 0
    )


class Candidate:
    """One affected entry in the index, with what every match of it needs computed once."""

    __slots__ = ("_rating", "advisory", "entry", "keys")

    def __init__(self, advisory: Advisory, entry: Affected) -> None:
        self.advisory = advisory
        self.entry = entry
        self.keys = vulnerability_keys(advisory)
        self._rating: Rating | None = None

    @property
    def rating(self) -> Rating:
        if self._rating is None:  # most entries never match: rate on first use
            self._rating = rate(self.entry.severity + self.advisory.severity)
        return self._rating


class _Hit(NamedTuple):
    candidate: Candidate
    matched_name: str
    matched_version: str
    rating: Rating


# Distinct (package name, version) pairs remembered per index: stored inventories share most
# of their packages (one base image under many), so a re-match mostly looks results up.
MEMO_LIMIT = 500_000


class AdvisoryIndex:
    """Advisories keyed by (stream, package name)."""

    def __init__(self, advisories: Iterable[Advisory]) -> None:
        self._memo: dict[
            tuple[Stream, str | None, str | None, str, str],
            tuple[tuple[_Hit, ...], tuple[str, ...]],
        ] = {}
        self._entries: dict[tuple[Stream, str], list[Candidate]] = {}
        self.advisory_count = 0
        for advisory in advisories:
            if advisory.withdrawn is not None:
                continue
            self.advisory_count += 1
            for entry in advisory.affected:
                self._entries.setdefault((entry.stream, entry.package), []).append(
                    Candidate(advisory, entry)
                )

    def candidates(self, stream: Stream, name: str) -> list[Candidate]:
        """The affected entries for one package name of a stream."""
        return self._entries.get((stream, name), [])

    def _stream(self, inventory: Inventory) -> tuple[Stream, str] | str:
        """(stream, version scheme) of the inventory's distro, or the warning why none."""
        stream = (
            stream_from_os_release(inventory.distro_id, inventory.distro_version)
            if inventory.distro_id
            else None
        )
        scheme = scheme_for(stream) if stream is not None else None
        if stream is None or scheme is None:
            described = " ".join(x for x in (inventory.distro_id, inventory.distro_version) if x)
            return f"distro {described or '(unknown)'}: no advisory stream for it; nothing matched"
        return stream, scheme

    def match(self, inventory: Inventory) -> MatchResult:
        """Issues for every package of ``inventory``."""
        found = self._stream(inventory)
        if isinstance(found, str):
            return MatchResult(None, (), IssueCounts(), (found,))
        stream, scheme = found
        warnings: list[str] = []
        issues: list[Issue] = []
        for package in inventory.packages:
            if package.type != scheme:
                continue  # e.g. an rpm database left in a Debian image: not this distro's feed
            issues.extend(self._match_package(stream, scheme, package, warnings))
        return MatchResult(stream, tuple(issues), count_issues(issues), tuple(warnings))

    def count(self, inventory: Inventory) -> IssueCounts:
        """What :meth:`match` would count, without building the issues (a re-match of many
        stored inventories needs only the counts)."""
        found = self._stream(inventory)
        if isinstance(found, str):
            return IssueCounts()
        stream, scheme = found
        tally = dict.fromkeys((*LEVELS, UNKNOWN, "fixable"), 0)
        for package in inventory.packages:
            if package.type != scheme:
                continue
            for hit in self._remembered_hits(stream, scheme, package)[0]:
                tally[hit.rating.level] += 1
                if hit.candidate.entry.fixed is not None:
                    tally["fixable"] += 1
        return IssueCounts(**tally)

    def _remembered_hits(
        self, stream: Stream, scheme: str, package: InventoryPackage
    ) -> tuple[tuple[_Hit, ...], tuple[str, ...]]:
        memo_key = (
            stream,
            package.source_name,
            package.source_version,
            package.name,
            package.version,
        )
        found = self._memo.get(memo_key)
        if found is None:
            found = self._hits(stream, scheme, package)
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            self._memo[memo_key] = found
        return found

    def _match_package(
        self, stream: Stream, scheme: str, package: InventoryPackage, warnings: list[str]
    ) -> list[Issue]:
        found = self._remembered_hits(stream, scheme, package)
        hits, problems = found
        warnings.extend(problems)
        return [
            Issue(
                hit.candidate.advisory.id,
                hit.candidate.advisory.aliases,
                hit.candidate.advisory.source,
                package.name,
                package.version,
                package.type,
                hit.matched_name,
                hit.matched_version,
                hit.candidate.entry.fixed,
                hit.rating.level,
                hit.rating.score,
                hit.rating.vector,
                package.layer_index,
                package.layer_diff_id,
                package.ref,
                hit.candidate.entry.ecosystem,
                hit.candidate.advisory.summary,
            )
            for hit in hits
        ]

    def _hits(
        self, stream: Stream, scheme: str, package: InventoryPackage
    ) -> tuple[tuple[_Hit, ...], tuple[str, ...]]:
        """What affects a package of this name and version, whichever image it is in."""
        lookups: list[tuple[str, str]] = []
        if package.source_name:
            lookups.append((package.source_name, package.source_version or package.version))
        if package.name != package.source_name:
            lookups.append((package.name, package.version))
        hits: list[_Hit] = []
        problems: list[str] = []
        covered: dict[str, int] = {}  # vulnerability -> the hit that reports it
        for name, version in lookups:
            for candidate in self.candidates(stream, name):
                earlier = [covered[k] for k in candidate.keys if k in covered]
                if len(earlier) == len(candidate.keys) and all(
                    hits[i].rating.level != UNKNOWN for i in earlier
                ):
                    continue  # reported already, with a severity
                try:
                    hit = _affects(scheme, version, candidate.entry)
                except VersionError as exc:
                    problems.append(
                        f"{package.name} {package.version}: {candidate.advisory.id} "
                        f"not checked: {exc}"
                    )
                    continue
                if not hit:
                    continue
                if len(earlier) == len(candidate.keys):
                    # Every vulnerability it speaks of is reported already: no new issue,
                    # but the severity the first feed lacked.
                    if candidate.rating.level != UNKNOWN:
                        for i in earlier:
                            if hits[i].rating.level == UNKNOWN:
                                hits[i] = hits[i]._replace(rating=candidate.rating)
                    continue
                for key in candidate.keys:
                    covered.setdefault(key, len(hits))
                hits.append(_Hit(candidate, name, version, candidate.rating))
        return tuple(hits), tuple(problems)
