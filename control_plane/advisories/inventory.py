"""What matching needs to know about an image: its distro and its packages.

Built from the agent's native scan JSON (``crbroker.scan/v1``, what the control plane stores
for every scan) so a stored inventory can be matched again without rescanning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class InventoryPackage(NamedTuple):
    type: str  # "deb" | "rpm" | "apk"
    name: str
    version: str  # as the distro writes it: epoch:version-release for rpm
    source_name: str | None = None
    source_version: str | None = None  # with the epoch, where the distro has one
    layer_index: int | None = None
    layer_diff_id: str | None = None
    ref: str | None = None  # the package's purl or SBOM bom-ref, to point back at it


class Inventory(NamedTuple):
    distro_id: str | None
    distro_version: str | None
    packages: tuple[InventoryPackage, ...]


class InventoryError(ValueError):
    """A scan document this module cannot read; the message names the field."""


def _source_version(entry: Mapping[str, Any]) -> str | None:
    source_version = entry.get("sourceVersion")
    if not isinstance(source_version, str) or not source_version:
        return None
    epoch = entry.get("epoch")
    # An rpm's SOURCERPM file name has no epoch; the source is built with the binary's (as
    # syft and trivy assume), and advisories write fixed versions with it.
    if (
        entry.get("type") == "rpm"
        and isinstance(epoch, int)
        and epoch
        and ":" not in source_version
    ):
        return f"{epoch}:{source_version}"
    return source_version


def inventory_from_scan(doc: Any) -> Inventory:
    """The inventory in a native scan document; InventoryError naming what is wrong."""
    if not isinstance(doc, Mapping):
        raise InventoryError("scan document: expected a JSON object")
    distro = doc.get("distro")
    distro_id = distro_version = None
    if isinstance(distro, Mapping):
        distro_id = distro.get("id") if isinstance(distro.get("id"), str) else None
        version = distro.get("versionId")
        distro_version = version if isinstance(version, str) else None
    entries = doc.get("packages")
    if not isinstance(entries, list):
        raise InventoryError("scan document: packages: expected a list")
    packages: list[InventoryPackage] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise InventoryError(f"scan document: packages[{index}]: expected an object")
        fields: dict[str, str] = {}
        for field in ("name", "type", "fullVersion"):
            value = entry.get(field) or (entry.get("version") if field == "fullVersion" else None)
            if not isinstance(value, str) or not value:
                raise InventoryError(f"scan document: packages[{index}].{field}: missing")
            fields[field] = value
        raw_layer = entry.get("layer")
        layer: Mapping[str, Any] = raw_layer if isinstance(raw_layer, Mapping) else {}
        source_name = entry.get("sourceName")
        packages.append(
            InventoryPackage(
                type=fields["type"],
                name=fields["name"],
                version=fields["fullVersion"],
                source_name=source_name if isinstance(source_name, str) and source_name else None,
                source_version=_source_version(entry),
                layer_index=layer.get("index") if isinstance(layer.get("index"), int) else None,
                layer_diff_id=layer.get("diffId") if isinstance(layer.get("diffId"), str) else None,
                ref=entry.get("purl") if isinstance(entry.get("purl"), str) else None,
            )
        )
    return Inventory(distro_id, distro_version, tuple(packages))
