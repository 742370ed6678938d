"""SBOM writers for a :class:`cr_agent.scan.ScanResult`: CycloneDX 1.6, SPDX 2.3, our JSON."""

from cr_agent.sbom.cyclonedx import to_cyclonedx_json
from cr_agent.sbom.native import native_document, to_native_json
from cr_agent.sbom.purl import package_purl
from cr_agent.sbom.spdx import spdx_document, to_spdx_json

__all__ = [
    "native_document",
    "package_purl",
    "spdx_document",
    "to_cyclonedx_json",
    "to_native_json",
    "to_spdx_json",
]
