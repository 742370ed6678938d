"""Advisory files in the real formats, built by code: OSV records, osv.dev's all.zip, Alpine
secdb and the Debian security tracker's JSON (shapes from the OSV schema, secdb.alpinelinux.org
and security-tracker.debian.org/tracker/data/json)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

CVSS_CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
CVSS_HIGH = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"  # 7.5
CVSS_MEDIUM = "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N"  # 4.2


def osv(
    record_id: str,
    ecosystem: str,
    package: str,
    *,
    fixed: str | None = None,
    introduced: str = "0",
    aliases: tuple[str, ...] = (),
    modified: str = "2024-05-01T10:00:00Z",
    withdrawn: str | None = None,
    cvss: str | None = None,
    extra_affected: tuple[dict[str, Any], ...] = (),
    **fields: Any,
) -> dict[str, Any]:
    """An OSV record with one affected distro package (ECOSYSTEM range)."""
    events: list[dict[str, str]] = [{"introduced": introduced}]
    if fixed is not None:
        events.append({"fixed": fixed})
    record: dict[str, Any] = {
        "schema_version": "1.6.0",
        "id": record_id,
        "modified": modified,
        "published": "2024-04-01T00:00:00Z",
        "aliases": list(aliases),
        "summary": f"{package} issue",
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": package},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
            },
            *extra_affected,
        ],
    }
    if withdrawn is not None:
        record["withdrawn"] = withdrawn
    if cvss is not None:
        record["severity"] = [{"type": "CVSS_V3", "score": cvss}]
    record.update(fields)
    return record


def write_json(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path


def write_all_zip(
    path: Path, records: list[dict[str, Any]], *, raw: dict[str, bytes] | None = None
) -> Path:
    """An ``all.zip`` as osv.dev publishes it: one ``<id>.json`` member per record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for record in records:
            archive.writestr(f"{record['id']}.json", json.dumps(record))
        for name, data in (raw or {}).items():
            archive.writestr(name, data)
    return path


def secdb(distroversion: str, packages: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    """An Alpine secdb document: package name -> {fixed version: [CVE, ...]}."""
    return {
        "apkurl": "{{urlprefix}}/{{distroversion}}/{{reponame}}/{{arch}}/{{pkg.name}}-{{pkg.ver}}.apk",
        "archs": ["aarch64", "x86_64"],
        "reponame": "main",
        "urlprefix": "https://dl-cdn.alpinelinux.org/alpine",
        "distroversion": distroversion,
        "packages": [
            {"pkg": {"name": name, "secfixes": fixes}} for name, fixes in packages.items()
        ],
    }


def tracker_release(
    status: str, fixed_version: str | None = None, urgency: str = "medium"
) -> dict[str, Any]:
    release: dict[str, Any] = {"status": status, "repositories": {}, "urgency": urgency}
    if fixed_version is not None:
        release["fixed_version"] = fixed_version
    return release


def tracker(entries: dict[str, dict[str, dict[str, dict[str, Any]]]]) -> dict[str, Any]:
    """A tracker document: package -> CVE -> codename -> release entry."""
    return {
        package: {
            cve: {"description": f"{cve} in {package}", "scope": "remote", "releases": releases}
            for cve, releases in issues.items()
        }
        for package, issues in entries.items()
    }


def openssl_dsa() -> dict[str, Any]:
    """DSA-5600-1: openssl in Debian 12, fixed in 3.0.13-1~deb12u1, CVSS high (7.5)."""
    return osv(
        "DSA-5600-1",
        "Debian:12",
        "openssl",
        fixed="3.0.13-1~deb12u1",
        aliases=("CVE-2024-0727",),
        cvss=CVSS_HIGH,
    )
