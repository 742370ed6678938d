"""What matching needs to know about an image: its distro and its packages.

Built from what the control plane keeps of a scan, so a stored inventory can be matched again
without rescanning: the agent's native scan JSON (``crbroker.scan/v1``) or a CycloneDX SBOM,
ours (``crbroker:`` properties) or syft's (``syft:metadata:`` properties).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import unquote


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


def with_epoch(kind: str, version: str | None, epoch: Any) -> str | None:
    """An rpm version with the binary's epoch: a SOURCERPM file name (and an rpm purl's
    version) has none, the source is built with the binary's (as syft and trivy assume), and
    advisories write fixed versions with it."""
    if not version:
        return None
    if isinstance(epoch, str) and epoch.isdigit():
        epoch = int(epoch)
    if kind == "rpm" and isinstance(epoch, int) and epoch and ":" not in version:
        return f"{epoch}:{version}"
    return version


def _source_version(entry: Mapping[str, Any]) -> str | None:
    source_version = entry.get("sourceVersion")
    if not isinstance(source_version, str):
        return None
    return with_epoch(str(entry.get("type")), source_version, entry.get("epoch"))


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


def _split_source_rpm(text: str) -> tuple[str, str] | None:
    """``openssl-3.0.7-25.el9.src.rpm`` -> (``openssl``, ``3.0.7-25.el9``)."""
    stem = text.removesuffix(".src.rpm").removesuffix(".nosrc.rpm")
    parts = stem.rsplit("-", 2)
    if stem == text or len(parts) != 3 or not all(parts):
        return None
    return parts[0], f"{parts[1]}-{parts[2]}"


def _cyclonedx_source(kind: str, props: Mapping[str, str]) -> tuple[str | None, str | None]:
    if "crbroker:package:sourceName" in props:
        return props["crbroker:package:sourceName"], props.get("crbroker:package:sourceVersion")
    if kind == "deb":
        return props.get("syft:metadata:source"), props.get("syft:metadata:sourceVersion")
    if kind == "apk":
        return props.get("syft:metadata:originPackage"), None
    if kind == "rpm" and props.get("syft:metadata:sourceRpm"):
        found = _split_source_rpm(props["syft:metadata:sourceRpm"])
        if found:
            return found
    return None, None


def _purl_type_and_epoch(text: str) -> tuple[str, str | None]:
    """A purl's type and ``epoch`` qualifier: all matching needs (packageurl-python's full
    parse costs ~0.1 ms a component, most of a stored scan's re-match)."""
    if not text.startswith("pkg:") or "/" not in text:
        raise ValueError(f"not a purl: {text[:80]!r}")
    kind = text[4 : text.index("/")].strip("/").lower()
    query = text.partition("#")[0].partition("?")[2]
    epoch = None
    for pair in query.split("&") if query else ():
        key, _, value = pair.partition("=")
        if key.lower() == "epoch":
            epoch = unquote(value)
    return kind, epoch


def _cyclonedx_package(component: dict[str, Any], where: str) -> InventoryPackage | None:
    purl_text = component.get("purl")
    if not isinstance(purl_text, str):
        return None
    try:
        kind, epoch = _purl_type_and_epoch(purl_text)
    except ValueError as exc:
        raise InventoryError(f"{where}.purl: {exc}") from None
    if kind not in ("deb", "rpm", "apk"):
        return None  # a language package: not matched against distro advisories
    raw = component.get("properties")
    # (decoded JSON: plain dicts; an isinstance against Mapping costs an ABC check per item)
    props: dict[str, str] = {
        p["name"]: p["value"]
        for p in (raw if type(raw) is list else ())
        if type(p) is dict and type(p.get("name")) is str and type(p.get("value")) is str
    }
    version = with_epoch(kind, component.get("version"), epoch)
    name = component.get("name")
    if not isinstance(name, str) or not name or not isinstance(version, str):
        raise InventoryError(f"{where}: component without a name or version")
    source_name, source_version = _cyclonedx_source(kind, props)
    layer = props.get("crbroker:layer:index")
    return InventoryPackage(
        type=kind,
        name=name,
        version=version,
        source_name=source_name or name,
        source_version=with_epoch(kind, source_version, epoch) or version,
        layer_index=int(layer) if layer and layer.isdigit() else None,
        layer_diff_id=props.get("crbroker:layer:diffID") or props.get("syft:location:0:layerID"),
        ref=str(component.get("bom-ref") or purl_text),
    )


def inventory_from_cyclonedx(doc: Any) -> Inventory:
    """The inventory in a CycloneDX JSON SBOM; InventoryError naming what is wrong."""
    if type(doc) is not dict or doc.get("bomFormat") != "CycloneDX":
        raise InventoryError("CycloneDX document: bomFormat is not CycloneDX")
    components = doc.get("components") or []
    if not isinstance(components, list):
        raise InventoryError("CycloneDX document: components: expected a list")
    distro_id = distro_version = None
    packages: list[InventoryPackage] = []
    for index, component in enumerate(components):
        if type(component) is not dict:
            raise InventoryError(f"CycloneDX document: components[{index}]: expected an object")
        if component.get("type") == "operating-system" and distro_id is None:
            distro_id = str(component.get("name") or "") or None
            distro_version = str(component.get("version") or "") or None
            continue
        package = _cyclonedx_package(component, f"CycloneDX document: components[{index}]")
        if package is not None:
            packages.append(package)
    return Inventory(distro_id, distro_version, tuple(packages))
