"""Alpine's secdb JSON (secdb.alpinelinux.org/v3.20/main.json; Wolfi and Chainguard publish
the same shape) to normalised advisories.

``{"distroversion": "v3.20", "reponame": "main", "packages": [{"pkg": {"name": "openssl",
"secfixes": {"3.1.4-r1": ["CVE-2023-5363"], "0": ["CVE-..."]}}}]}``: each version lists the
CVEs fixed in it; the ``"0"`` key lists CVEs that never affected Alpine's build. One advisory
per identifier, with one affected entry per package that fixes it. The format has no severity
and no modification time.
"""

from __future__ import annotations

import re
from typing import Any

from control_plane.advisories.ecosystems import alpine_release
from control_plane.advisories.records import Advisory, Affected, ReadOutcome, Skipped, Stream
from control_plane.advisories.version_order import VersionError, parse

_IDENTIFIER = re.compile(r"[A-Z][A-Z0-9]*-[A-Za-z0-9][A-Za-z0-9._:-]*")
NOT_AFFECTED = "0"


def _stream(doc: dict[str, Any]) -> tuple[Stream, str] | None:
    """(stream, ecosystem name) of the document."""
    version = doc.get("distroversion")
    if isinstance(version, str):
        release = alpine_release(version)
        if release:
            return Stream("alpine", release), f"Alpine:v{release}"
    prefix = str(doc.get("urlprefix") or doc.get("apkurl") or "")
    for family, marker in (("wolfi", "wolfi.dev"), ("chainguard", "cgr.dev")):
        if marker in prefix:
            return Stream(family, ""), family.capitalize()
    return None


def read_secdb(doc: Any, where: str) -> ReadOutcome:
    """Advisories from one decoded secdb document."""
    if not isinstance(doc, dict):
        return ReadOutcome.failed(where, "(document)", "expected a JSON object")
    outcome = ReadOutcome()
    found = _stream(doc)
    if found is None:
        outcome.skipped.append(
            Skipped(where, "distroversion", f"not an Alpine release: {doc.get('distroversion')!r}")
        )
        return outcome
    stream, ecosystem = found
    packages = doc.get("packages")
    if not isinstance(packages, list):
        outcome.skipped.append(Skipped(where, "packages", "expected a list"))
        return outcome
    by_id: dict[str, list[Affected]] = {}
    for p_index, item in enumerate(packages):
        field = f"packages[{p_index}].pkg"
        pkg = item.get("pkg") if isinstance(item, dict) else None
        if not isinstance(pkg, dict):
            outcome.skipped.append(Skipped(where, field, "expected an object"))
            continue
        name = pkg.get("name")
        if not isinstance(name, str) or not name.strip():
            outcome.skipped.append(Skipped(where, f"{field}.name", "missing"))
            continue
        secfixes = pkg.get("secfixes")
        if not isinstance(secfixes, dict):
            outcome.skipped.append(
                Skipped(f"{where} ({name})", f"{field}.secfixes", "expected an object")
            )
            continue
        for version, entries in secfixes.items():
            label = f"{where} ({name} {version})"
            if not isinstance(entries, list):
                outcome.skipped.append(
                    Skipped(label, f"{field}.secfixes.{version}", "expected a list")
                )
                continue
            if version == NOT_AFFECTED:
                continue
            try:
                parse("apk", version)
            except VersionError as exc:
                outcome.skipped.append(Skipped(label, f"{field}.secfixes", str(exc)))
                continue
            for entry in entries:
                match = _IDENTIFIER.match(entry) if isinstance(entry, str) else None
                if match is None:
                    outcome.skipped.append(
                        Skipped(
                            label, f"{field}.secfixes.{version}", f"not an identifier: {entry!r}"
                        )
                    )
                    continue
                by_id.setdefault(match.group(0), []).append(
                    Affected(ecosystem, stream, name, version)
                )
    scope = f"{stream} {doc.get('reponame') or ''}".strip()
    outcome.advisories.extend(
        Advisory(
            id=advisory_id,
            source="alpine-secdb",
            affected=tuple(dict.fromkeys(affected)),
            scope=scope,
        )
        for advisory_id, affected in by_id.items()
    )
    return outcome
