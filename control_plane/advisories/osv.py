"""OSV records (https://ossf.github.io/osv-schema/) to normalised advisories.

Only distro ecosystems are kept (see :mod:`ecosystems`); an ``affected`` entry of another
ecosystem (PyPI, npm, ...) is left out, and a record left with none is skipped with that
reason. A record whose required parts are missing or of the wrong type is skipped with the
path of the field, e.g. ``affected[2].ranges[0].events[1].fixed``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from control_plane.advisories.ecosystems import scheme_for, stream_from_osv
from control_plane.advisories.records import Advisory, Affected, ReadOutcome, Severity, Skipped
from control_plane.advisories.version_order import VersionError, parse

_CVSS_TYPES = ("CVSS_V2", "CVSS_V3", "CVSS_V4")


class _Bad(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


def normalise_time(text: Any, field: str) -> str:
    """An RFC 3339 timestamp as UTC ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (comparable as text)."""
    if not isinstance(text, str):
        raise _Bad(field, f"expected an RFC 3339 timestamp, got {type(text).__name__}")
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise _Bad(field, f"not an RFC 3339 timestamp: {text[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)  # OSV requires UTC; a bare time is read as such
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat() + "Z"


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad(field, "missing" if value is None else "expected a non-empty string")
    return value


def _list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Bad(field, f"expected a list, got {type(value).__name__}")
    return value


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(field, "missing" if value is None else "expected an object")
    return value


def _severities(value: Any, field: str) -> list[Severity]:
    found: list[Severity] = []
    for index, item in enumerate(_list(value, field)):
        entry = _object(item, f"{field}[{index}]")
        kind = _string(entry.get("type"), f"{field}[{index}].type")
        score = _string(entry.get("score"), f"{field}[{index}].score")
        if kind in _CVSS_TYPES:
            found.append(Severity(kind, score))
        else:  # "Ubuntu": {"type": "Ubuntu", "score": "medium"}, and future distro types
            found.append(Severity("distro", score))
    return found


def _words(*holders: Any) -> list[Severity]:
    """Distro ratings in database_specific / ecosystem_specific (severity, urgency)."""
    found: list[Severity] = []
    for holder in holders:
        if isinstance(holder, dict):
            for key in ("severity", "urgency"):
                word = holder.get(key)
                if isinstance(word, str) and word.strip():
                    found.append(Severity("distro", word.strip()))
    return found


def _intervals(
    ranges: list[Any], field: str, scheme: str
) -> list[tuple[str | None, str | None, str | None]]:
    """(introduced, fixed, last_affected) per affected interval of the ECOSYSTEM ranges."""
    found: list[tuple[str | None, str | None, str | None]] = []
    for r_index, item in enumerate(ranges):
        where = f"{field}[{r_index}]"
        entry = _object(item, where)
        kind = _string(entry.get("type"), f"{where}.type")
        if kind != "ECOSYSTEM":
            continue  # GIT commit ranges say nothing about a package version
        events = _list(entry.get("events"), f"{where}.events")
        if not events:
            raise _Bad(f"{where}.events", "empty")
        introduced: str | None = None
        open_interval = False
        for e_index, event_item in enumerate(events):
            event = _object(event_item, f"{where}.events[{e_index}]")
            known = [k for k in ("introduced", "fixed", "last_affected", "limit") if k in event]
            if len(known) != 1:
                raise _Bad(
                    f"{where}.events[{e_index}]",
                    "expected exactly one of introduced, fixed, last_affected, limit",
                )
            key = known[0]
            version = _string(event[key], f"{where}.events[{e_index}].{key}")
            if version != "0" or key != "introduced":
                try:
                    parse(scheme, version)
                except VersionError as exc:
                    raise _Bad(f"{where}.events[{e_index}].{key}", str(exc)) from None
            if key == "introduced":
                introduced = None if version == "0" else version
                open_interval = True
            elif key in ("fixed", "last_affected") and open_interval:
                fixed = version if key == "fixed" else None
                last = version if key == "last_affected" else None
                found.append((introduced, fixed, last))
                open_interval = False
        if open_interval:
            found.append((introduced, None, None))
    return found


def _affected(item: Any, field: str) -> tuple[list[Affected], str | None]:
    """The entries for one ``affected`` item, and its ecosystem if it is not one we match."""
    entry = _object(item, field)
    package = _object(entry.get("package"), f"{field}.package")
    ecosystem = _string(package.get("ecosystem"), f"{field}.package.ecosystem")
    name = _string(package.get("name"), f"{field}.package.name")
    stream = stream_from_osv(ecosystem)
    if stream is None:
        return [], ecosystem
    severity = tuple(
        _severities(entry.get("severity"), f"{field}.severity")
        + _words(entry.get("ecosystem_specific"), entry.get("database_specific"))
    )
    ranges = _list(entry.get("ranges"), f"{field}.ranges")
    scheme = scheme_for(stream)
    assert scheme is not None  # every stream the ecosystems module returns has a scheme
    intervals = _intervals(ranges, f"{field}.ranges", scheme)
    if not intervals and _list(entry.get("versions"), f"{field}.versions"):
        # Only an enumeration of affected versions: rare for distros, and without a range
        # there is no fixed version to compare with.
        raise _Bad(f"{field}.ranges", "no ECOSYSTEM range (only a versions list)")
    return [
        Affected(ecosystem, stream, name, fixed, introduced, last, severity)
        for introduced, fixed, last in intervals
    ], None


def _distinct(affected: list[Affected]) -> tuple[Affected, ...]:
    """One entry per (stream, package, interval): Red Hat's appstream and baseos entries, or
    two SUSE products of one service pack, say the same thing."""
    kept: dict[tuple[Any, ...], Affected] = {}
    for entry in affected:
        key = (entry.stream, entry.package, entry.introduced, entry.fixed, entry.last_affected)
        kept.setdefault(key, entry)
    return tuple(kept.values())


def advisory_from_osv(record: Any) -> Advisory:
    """One OSV record as an Advisory; raises _Bad naming the field that is wrong."""
    doc = _object(record, "(record)")
    advisory_id = _string(doc.get("id"), "id")
    modified = normalise_time(doc.get("modified"), "modified")
    published = (
        normalise_time(doc["published"], "published") if doc.get("published") is not None else None
    )
    withdrawn = (
        normalise_time(doc["withdrawn"], "withdrawn") if doc.get("withdrawn") is not None else None
    )
    aliases = tuple(
        _string(alias, f"aliases[{i}]")
        for i, alias in enumerate(_list(doc.get("aliases"), "aliases"))
    )
    affected: list[Affected] = []
    others: set[str] = set()
    for index, item in enumerate(_list(doc.get("affected"), "affected")):
        entries, other = _affected(item, f"affected[{index}]")
        affected.extend(entries)
        if other is not None:
            others.add(other)
    if not affected and withdrawn is None:
        if others:
            raise _Bad(
                "affected",
                f"no distro ecosystem this matcher knows (saw {', '.join(sorted(others))})",
            )
        raise _Bad("affected", "no affected package with an ECOSYSTEM range")
    summary = doc.get("summary")
    return Advisory(
        id=advisory_id,
        source="osv",
        affected=_distinct(affected),
        aliases=aliases,
        modified=modified,
        published=published,
        withdrawn=withdrawn,
        summary=summary if isinstance(summary, str) else "",
        severity=tuple(
            _severities(doc.get("severity"), "severity") + _words(doc.get("database_specific"))
        ),
    )


def read_osv_records(document: Any, where: str) -> ReadOutcome:
    """Advisories from a decoded OSV JSON document: one record or a list of records."""
    outcome = ReadOutcome()
    records = document if isinstance(document, list) else [document]
    for index, record in enumerate(records):
        label = where if not isinstance(document, list) else f"{where}[{index}]"
        record_id = record.get("id") if isinstance(record, dict) else None
        if isinstance(record_id, str) and record_id:
            label = f"{label} ({record_id})"
        try:
            outcome.advisories.append(advisory_from_osv(record))
        except _Bad as bad:
            outcome.skipped.append(Skipped(label, bad.field, bad.reason))
    return outcome
