"""What the console and the PDF report show of a stored CycloneDX SBOM: the image (name,
digest, platform, distro) and its packages with version, type, licence and the layer that
introduced each (the agent's ``crbroker:layer:*`` properties)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from control_plane.results.sbom_documents import licence_expression


@dataclass(frozen=True)
class PackageRow:
    name: str
    version: str
    type: str
    licence: str
    layer_index: int | None
    layer_diff_id: str
    layer_created_by: str


@dataclass(frozen=True)
class ImageFacts:
    name: str
    digest: str
    platform: str
    distro: str
    packages: list[PackageRow]


def _props(item: dict[str, Any]) -> dict[str, str]:
    return {
        str(p.get("name")): str(p.get("value"))
        for p in item.get("properties") or []
        if isinstance(p, dict)
    }


def image_facts(raw: bytes) -> ImageFacts:
    """Facts and packages of a CycloneDX JSON document (as the agent writes it)."""
    document = json.loads(raw)
    image = document.get("metadata", {}).get("component", {})
    distro = ""
    packages: list[PackageRow] = []
    for component in document.get("components") or []:
        if component.get("type") == "operating-system":
            distro = component.get("description") or " ".join(
                filter(None, (component.get("name"), component.get("version")))
            )
            continue
        if not component.get("purl"):
            continue
        props = _props(component)
        index = props.get("crbroker:layer:index")
        packages.append(
            PackageRow(
                name=str(component.get("name", "")),
                version=str(component.get("version", "")),
                type=props.get("crbroker:package:type", ""),
                licence=licence_expression(component),
                layer_index=int(index) if index and index.isdigit() else None,
                layer_diff_id=props.get("crbroker:layer:diffID", ""),
                layer_created_by=props.get("crbroker:layer:createdBy", ""),
            )
        )
    return ImageFacts(
        name=str(image.get("name", "")),
        digest=str(image.get("version", "")),
        platform=_props(image).get("crbroker:image:platform", ""),
        distro=distro,
        packages=packages,
    )
