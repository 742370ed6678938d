"""SPDX 2.3 JSON, written directly from the SPDX 2.3 JSON schema's field names."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from cr_agent.sbom.purl import purl_string
from cr_agent.sbom.stamps import random_uuid, utc_timestamp
from cr_agent.scan import ScanResult

if TYPE_CHECKING:
    import datetime as dt

TOOL = "crbroker-cr-agent-0.1.0"
_ID_SAFE = re.compile(r"[^A-Za-z0-9.-]")


def _spdx_id(text: str) -> str:
    return "SPDXRef-" + _ID_SAFE.sub("-", text)


def spdx_document(result: ScanResult, *, created: dt.datetime | None = None) -> dict[str, Any]:
    root_id = _spdx_id(f"Image-{result.digest.replace(':', '-')}")
    packages: list[dict[str, Any]] = [
        {
            "SPDXID": root_id,
            "name": result.image_name,
            "versionInfo": result.digest,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "CONTAINER",
            "checksums": [{"algorithm": "SHA256", "checksumValue": result.digest.split(":", 1)[1]}]
            if result.digest.startswith("sha256:")
            else [],
        }
    ]
    relationships = [
        {
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": root_id,
        }
    ]
    for number, record in enumerate(result.packages):
        package = record.package
        purl = purl_string(package, result.distro)
        spdx_id = _spdx_id(f"Package-{package.type}-{package.name}-{number}")
        entry: dict[str, Any] = {
            "SPDXID": spdx_id,
            "name": package.name,
            "versionInfo": package.full_version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "LIBRARY",
            "sourceInfo": f"introduced by layer {record.layer_index} ({record.layer_diff_id})"
            + (f": {record.layer_created_by}" if record.layer_created_by else ""),
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": purl,
                }
            ],
        }
        if package.licenses:
            # licence strings from package databases are often not SPDX expressions; keep the
            # text as the packager wrote it instead of guessing an identifier
            entry["licenseComments"] = "declared by the package database: " + "; ".join(
                package.licenses
            )
        if package.source_name and package.source_name != package.name:
            entry["comment"] = (
                f"source package {package.source_name} {package.source_version or ''}".strip()
            )
        packages.append(entry)
        relationships.append(
            {
                "spdxElementId": root_id,
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": spdx_id,
            }
        )
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": result.image_name + "@" + result.digest,
        "documentNamespace": f"https://crbroker.invalid/spdx/{result.digest.replace(':', '-')}-{random_uuid()}",
        "creationInfo": {
            "created": utc_timestamp(created),
            "creators": [f"Tool: {TOOL}"],
        },
        "packages": packages,
        "relationships": relationships,
    }


def to_spdx_json(result: ScanResult) -> str:
    return json.dumps(spdx_document(result), indent=2, ensure_ascii=False)
