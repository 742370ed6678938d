"""The Debian security tracker's JSON (security-tracker.debian.org/tracker/data/json).

``{source package: {CVE: {"description", "releases": {codename: {"status": "resolved" |
"open" | "undetermined", "fixed_version", "urgency", "repositories": {...}}}}}}``. Status
``resolved`` with fixed version ``"0"`` means the release was never affected; ``open`` and
``undetermined`` have no fix (unfixed). Urgency is Debian's own rating. One advisory per CVE,
with one affected entry per (package, release). The format has no modification time.
"""

from __future__ import annotations

from typing import Any

from control_plane.advisories.ecosystems import stream_from_debian_codename
from control_plane.advisories.records import Advisory, Affected, ReadOutcome, Severity, Skipped
from control_plane.advisories.version_order import VersionError, parse

_UNFIXED_STATUSES = ("open", "undetermined")


def _affected(
    package: str, cve: str, releases: Any, field: str, skipped: list[Skipped], where: str
) -> list[Affected]:
    label = f"{where} ({cve} {package})"
    if not isinstance(releases, dict):
        skipped.append(Skipped(label, f"{field}.releases", "expected an object"))
        return []
    found: list[Affected] = []
    for codename, info in releases.items():
        stream = stream_from_debian_codename(codename)
        if stream is None:
            continue  # sid, experimental: no numbered release an image reports
        at = f"{field}.releases.{codename}"
        if not isinstance(info, dict):
            skipped.append(Skipped(label, at, "expected an object"))
            continue
        status = info.get("status")
        fixed = info.get("fixed_version")
        if status == "resolved":
            if not isinstance(fixed, str) or not fixed:
                skipped.append(
                    Skipped(label, f"{at}.fixed_version", "missing for a resolved issue")
                )
                continue
            if fixed == "0":
                continue  # never affected this release
            try:
                parse("deb", fixed)
            except VersionError as exc:
                skipped.append(Skipped(label, f"{at}.fixed_version", str(exc)))
                continue
            fixed_version: str | None = fixed
        elif status in _UNFIXED_STATUSES:
            fixed_version = None
        else:
            skipped.append(Skipped(label, f"{at}.status", f"unknown status {status!r}"))
            continue
        urgency = info.get("urgency")
        severity = (Severity("distro", urgency),) if isinstance(urgency, str) and urgency else ()
        found.append(
            Affected(f"Debian:{stream.release}", stream, package, fixed_version, severity=severity)
        )
    return found


def read_tracker(doc: Any, where: str) -> ReadOutcome:
    """Advisories from the decoded tracker document."""
    if not isinstance(doc, dict):
        return ReadOutcome.failed(where, "(document)", "expected a JSON object")
    outcome = ReadOutcome()
    affected: dict[str, list[Affected]] = {}
    summaries: dict[str, str] = {}
    for package, issues in doc.items():
        if not isinstance(issues, dict):
            outcome.skipped.append(Skipped(f"{where} ({package})", package, "expected an object"))
            continue
        for cve, body in issues.items():
            field = f"{package}.{cve}"
            if not isinstance(body, dict):
                outcome.skipped.append(
                    Skipped(f"{where} ({cve} {package})", field, "expected an object")
                )
                continue
            entries = _affected(package, cve, body.get("releases"), field, outcome.skipped, where)
            if entries:
                affected.setdefault(cve, []).extend(entries)
                description = body.get("description")
                if isinstance(description, str) and cve not in summaries:
                    summaries[cve] = description
    outcome.advisories.extend(
        Advisory(
            id=cve,
            source="debian-tracker",
            affected=tuple(entries),
            aliases=(),
            summary=summaries.get(cve, ""),
        )
        for cve, entries in affected.items()
    )
    return outcome
