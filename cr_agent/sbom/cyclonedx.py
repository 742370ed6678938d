"""CycloneDX 1.6 JSON: the image as the metadata component, the distro as an
operating-system component, one library component per package with its purl and the
introducing layer as properties.

Written directly as JSON from the 1.6 schema's field names; licence identifiers are checked
with cyclonedx-python-lib's SPDX helpers, and the tests validate every document against the
library's strict 1.6 JSON schema. Building the library's object model instead cost about 1 s
per 1000 packages (sorted sets of rich objects, reflective serialisation) — more than the
whole scan of a typical image — so it is not used for writing.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

from cr_agent.sbom.purl import purl_and_version
from cr_agent.sbom.stamps import random_uuid, utc_timestamp
from cr_agent.scan import ScanResult

if TYPE_CHECKING:
    import datetime as dt

    from control_plane.advisories.matching import Issue, MatchResult
    from cr_agent.catalogers.base import Package

SCHEMA = "http://cyclonedx.org/schema/bom-1.6.schema.json"
TOOL = {"type": "application", "name": "crbroker-cr-agent", "version": "0.1.0"}


@functools.lru_cache(maxsize=1)
def _spdx_ids() -> dict[str, str] | None:
    """lower-case -> canonical SPDX licence id, from the SPDX list cyclonedx-python-lib ships.

    Read directly rather than through ``cyclonedx.spdx``, whose import also builds the
    licence-expression parser (~25 ms of start-up a scan of a small image would pay). None
    when the library's layout changed; then its public ``fixup_id`` is used.
    """
    try:
        from cyclonedx.schema._res import SPDX_JSON

        with open(SPDX_JSON) as fh:
            ids = json.load(fh).get("enum", [])
    except (ImportError, OSError, ValueError):
        return None
    return {i.lower(): i for i in ids} or None


def _fixup(text: str) -> str | None:
    table = _spdx_ids()
    if table is not None:
        return table.get(text.lower())
    from cyclonedx import spdx

    return spdx.fixup_id(text)


@functools.lru_cache(maxsize=4096)
def _license(text: str) -> tuple[str, str]:
    """("id" | "expression" | "name", value) for one licence string from a package database."""
    spdx_id = _fixup(text)
    if spdx_id:
        return "id", spdx_id
    if any(op in f" {text} " for op in (" AND ", " OR ", " WITH ")):
        from cyclonedx import spdx  # the expression parser, only for compound licences

        if spdx.is_expression(text):
            return "expression", text
    return "name", text


def _licenses(texts: tuple[str, ...]) -> list[dict[str, Any]]:
    kinds = [_license(t) for t in texts if t.strip()]
    if len(kinds) == 1 and kinds[0][0] == "expression":
        return [{"expression": kinds[0][1]}]
    # the schema allows either one expression or a list of licences, never a mix
    return [
        {"license": {"id": value} if kind == "id" else {"name": value}} for kind, value in kinds
    ]


def _prop(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value}


def _syft_source_properties(package: Package) -> list[dict[str, str]]:
    """The source package as syft writes it, so that grype and trivy, which read syft's
    properties from a CycloneDX SBOM, match advisories by source package on ours too."""
    if package.type == "deb":
        props = []
        if package.source_name and package.source_name != package.name:
            props.append(_prop("syft:metadata:source", package.source_name))
        # syft writes a source version only where dpkg's Source field gave one, i.e. where
        # it differs from the binary's
        if package.source_version and package.source_version != package.full_version:
            props.append(_prop("syft:metadata:sourceVersion", package.source_version))
        return props
    if package.type == "apk" and package.source_name:
        return [_prop("syft:metadata:originPackage", package.source_name)]
    if package.type == "rpm":
        source_rpm = dict(package.extra).get("sourcerpm")
        if source_rpm:
            return [_prop("syft:metadata:sourceRpm", source_rpm)]
    return []


_CVSS_METHODS = {"CVSS:3.1/": "CVSSv31", "CVSS:3.0/": "CVSSv3", "CVSS:4.0/": "CVSSv4"}


def _rating(issue: Issue) -> dict[str, Any]:
    if issue.cvss_vector is None or issue.cvss_score is None:
        return {"severity": issue.severity, "method": "other"}
    method = next(
        (m for prefix, m in _CVSS_METHODS.items() if issue.cvss_vector.startswith(prefix)),
        "CVSSv2",
    )
    return {
        "score": issue.cvss_score,
        "severity": issue.severity,
        "method": method,
        "vector": issue.cvss_vector,
    }


def _vulnerabilities(match: MatchResult, refs: list[str]) -> list[dict[str, Any]]:
    """One entry per issue (advisory x package), pointing at the package's component."""
    found = []
    for number, issue in enumerate(match.issues):
        vulnerability: dict[str, Any] = {
            "bom-ref": f"vuln:{number}",
            "id": issue.advisory_id,
            "source": {"name": issue.advisory_source},
        }
        if issue.aliases:
            vulnerability["references"] = [
                {"id": alias, "source": {"name": alias.partition("-")[0]}}
                for alias in issue.aliases
            ]
        vulnerability["ratings"] = [_rating(issue)]
        if issue.summary:
            vulnerability["description"] = issue.summary
        if issue.fixed_version:
            vulnerability["recommendation"] = (
                f"Upgrade {issue.package_name} to {issue.fixed_version} or later"
            )
        affected = {"version": issue.package_version, "status": "affected"}
        vulnerability["affects"] = [
            {"ref": refs[int(issue.package_ref or 0)], "versions": [affected]}
        ]
        props = [_prop("crbroker:vulnerability:installedVersion", issue.package_version)]
        if issue.fixed_version:
            props.append(_prop("crbroker:vulnerability:fixedVersion", issue.fixed_version))
        props.append(_prop("crbroker:vulnerability:matchedPackage", issue.matched_name))
        vulnerability["properties"] = props
        found.append(vulnerability)
    return found


def cyclonedx_document(
    result: ScanResult, *, now: dt.datetime | None = None, match: MatchResult | None = None
) -> dict[str, Any]:
    """The document; with ``match``, its issues in the ``vulnerabilities`` section."""
    image_ref = f"image:{result.digest}"
    components: list[dict[str, Any]] = []
    if result.distro is not None:
        os_component: dict[str, Any] = {
            "type": "operating-system",
            "bom-ref": f"os:{result.distro.id}:{result.distro.version_id or ''}",
            "name": result.distro.id,
        }
        if result.distro.version_id:
            os_component["version"] = result.distro.version_id
        if result.distro.pretty_name:
            os_component["description"] = result.distro.pretty_name
        components.append(os_component)
    for number, record in enumerate(result.packages):
        package = record.package
        purl_text, purl_version = purl_and_version(package, result.distro)
        props = [
            _prop("crbroker:package:type", package.type),
            _prop("crbroker:layer:index", str(record.layer_index)),
            _prop("crbroker:layer:diffID", record.layer_diff_id),
        ]
        if record.layer_created_by:
            props.append(_prop("crbroker:layer:createdBy", record.layer_created_by))
        if package.database:
            props.append(_prop("crbroker:package:database", package.database))
        if package.source_name:
            props.append(_prop("crbroker:package:sourceName", package.source_name))
        if package.source_version:
            props.append(_prop("crbroker:package:sourceVersion", package.source_version))
        props.extend(_syft_source_properties(package))
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": f"pkg:{number}:{purl_text}",
            "name": package.name,
            "version": purl_version or package.full_version,
            "purl": purl_text,
        }
        licenses = _licenses(package.licenses)
        if licenses:
            component["licenses"] = licenses
        component["properties"] = props
        components.append(component)
    document: dict[str, Any] = {
        "$schema": SCHEMA,
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{random_uuid()}",
        "version": 1,
        "metadata": {
            "timestamp": utc_timestamp(now),
            "tools": {"components": [TOOL]},
            "component": {
                "type": "container",
                "bom-ref": image_ref,
                "name": result.image_name,
                "version": result.digest,
                "properties": [
                    _prop("crbroker:image:platform", result.platform),
                    _prop("crbroker:image:reference", result.reference),
                    _prop("crbroker:image:configDigest", result.config_digest),
                ]
                + (
                    [_prop("crbroker:image:indexDigest", result.index_digest)]
                    if result.index_digest
                    else []
                ),
            },
        },
        "components": components,
        "dependencies": [{"ref": image_ref, "dependsOn": [c["bom-ref"] for c in components]}]
        + [{"ref": c["bom-ref"]} for c in components],
    }
    if match is not None:
        package_refs = [c["bom-ref"] for c in components if c["type"] == "library"]
        document["vulnerabilities"] = _vulnerabilities(match, package_refs)
    return document


def to_cyclonedx_json(result: ScanResult, match: MatchResult | None = None) -> str:
    return json.dumps(cyclonedx_document(result, match=match), indent=2, ensure_ascii=False)
