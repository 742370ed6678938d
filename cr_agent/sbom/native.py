"""Our own JSON: everything the scan knows, including the layer that introduced each package."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from cr_agent.sbom.purl import purl_string
from cr_agent.scan import ScanResult

if TYPE_CHECKING:
    from control_plane.advisories.matching import MatchResult

SCHEMA = "crbroker.scan/v1"


def _vulnerabilities(match: MatchResult) -> list[dict[str, Any]]:
    return [
        {
            "id": issue.advisory_id,
            "aliases": list(issue.aliases),
            "source": issue.advisory_source,
            "package": issue.package_name,
            "packageIndex": int(issue.package_ref or 0),
            "installedVersion": issue.package_version,
            "matchedName": issue.matched_name,
            "matchedVersion": issue.matched_version,
            "fixedVersion": issue.fixed_version,
            "severity": issue.severity,
            "cvssScore": issue.cvss_score,
            "cvssVector": issue.cvss_vector,
            "ecosystem": issue.ecosystem,
            "layer": {"index": issue.layer_index, "diffId": issue.layer_diff_id},
        }
        for issue in match.issues
    ]


def native_document(result: ScanResult, match: MatchResult | None = None) -> dict[str, Any]:
    """The document; with ``match``, its issues and their counts."""
    distro = result.distro
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "image": {
            "registry": result.registry,
            "repository": result.repository,
            "reference": result.reference,
            "digest": result.digest,
            "indexDigest": result.index_digest,
            "configDigest": result.config_digest,
            "platform": result.platform,
        },
        "distro": None
        if distro is None
        else {
            "id": distro.id,
            "versionId": distro.version_id,
            "prettyName": distro.pretty_name,
            "idLike": list(distro.id_like),
            "codename": distro.version_codename,
        },
        "layers": [
            {
                "index": layer.index,
                "digest": layer.digest,
                "diffId": layer.diff_id,
                "size": layer.size,
                "mediaType": layer.media_type,
                "createdBy": layer.created_by,
                "fromCache": layer.from_cache,
            }
            for layer in result.layers
        ],
        "packages": [
            {
                "type": r.package.type,
                "name": r.package.name,
                "version": r.package.version,
                "epoch": r.package.epoch,
                "release": r.package.release,
                "fullVersion": r.package.full_version,
                "arch": r.package.arch,
                "sourceName": r.package.source_name,
                "sourceVersion": r.package.source_version,
                "licenses": list(r.package.licenses),
                "database": r.package.database,
                "purl": purl_string(r.package, distro),
                "layer": {
                    "index": r.layer_index,
                    "diffId": r.layer_diff_id,
                    "createdBy": r.layer_created_by,
                },
            }
            for r in result.packages
        ],
        "warnings": list(result.warnings),
        "durationSeconds": round(result.duration_seconds, 3),
    }
    if match is not None:
        document["vulnerabilities"] = _vulnerabilities(match)
        document["vulnerabilityCounts"] = {**match.counts._asdict(), "total": match.counts.total}
    return document


def to_native_json(
    result: ScanResult, match: MatchResult | None = None, *, indent: int | None = 2
) -> str:
    return json.dumps(native_document(result, match), indent=indent, ensure_ascii=False)
