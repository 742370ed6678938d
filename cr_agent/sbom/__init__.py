"""SBOM writers for a :class:`cr_agent.scan.ScanResult`: CycloneDX 1.6, SPDX 2.3, our JSON.

Names resolve lazily, so a command that writes one format imports only that writer.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "native_document": "native",
    "to_native_json": "native",
    "package_purl": "purl",
    "purl_string": "purl",
    "purl_and_version": "purl",
    "spdx_document": "spdx",
    "to_spdx_json": "spdx",
    "to_cyclonedx_json": "cyclonedx",
    "cyclonedx_document": "cyclonedx",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cr_agent.sbom' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cr_agent.sbom.{module}"), name)
