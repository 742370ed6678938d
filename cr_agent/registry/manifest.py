"""Manifests, indexes and image configs: bytes in, typed values out (no I/O).

Accepts OCI image manifests and indexes (with or without the optional ``mediaType`` field),
Docker schema2 manifests and manifest lists; rejects schema1 and non-image artifacts with
:class:`UnsupportedManifest`, malformed JSON with :class:`ManifestError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cr_agent.registry import json_depth
from cr_agent.registry.errors import ManifestError, UnsupportedManifest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

IMAGE_MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
#: What we send in ``Accept``; schema1 is listed so a registry answers with it (and we can
#: say "unsupported") instead of a 404 for the tag.
ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST, SCHEMA1_SIGNED, SCHEMA1))

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 16 * 1024 * 1024

_NO_ANNOTATIONS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``os/arch[/variant]``, e.g. ``linux/arm64/v8``."""
        parts = [p for p in text.strip().split("/") if p]
        if len(parts) not in (2, 3):
            raise ValueError(f"platform {text!r} is not os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


# default variants: what a descriptor without a variant means for these architectures
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}


def platform_matches(wanted: Platform, offered: Platform) -> bool:
    if (wanted.os, wanted.architecture) != (offered.os, offered.architecture):
        return False
    if wanted.variant is None:
        return True
    default = _DEFAULT_VARIANT.get(offered.architecture)
    return (offered.variant or default) == wanted.variant


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    artifact_type: str | None = None
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=lambda: _NO_ANNOTATIONS)


@dataclass(frozen=True, slots=True)
class ImageManifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor]
    digest: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class ImageIndex:
    media_type: str
    manifests: list[Descriptor]
    digest: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    created_by: str
    empty_layer: bool
    created: str | None = None


@dataclass(frozen=True, slots=True)
class ImageConfig:
    os: str | None
    architecture: str | None
    variant: str | None
    diff_ids: list[str]
    history: list[HistoryEntry]
    raw: bytes

    def layer_history(self) -> list[str | None]:
        """``created_by`` for each diffID: history entries with ``empty_layer`` are skipped.

        If the history does not account for every layer (tools that write none, or a broken
        config), the layers without an entry get None rather than a wrong command.
        """
        commands: list[str | None] = [h.created_by for h in self.history if not h.empty_layer]
        if len(commands) != len(self.diff_ids):
            # align from the top when counts differ: base images squashed without history
            # usually lose the lowest entries, not the ones the user wrote last
            if len(commands) > len(self.diff_ids):
                commands = commands[-len(self.diff_ids) :] if self.diff_ids else []
            else:
                missing: list[str | None] = [None] * (len(self.diff_ids) - len(commands))
                commands = missing + commands
        return commands


def _load(raw: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json_depth.loads(raw)
    except json_depth.JsonTooDeep as exc:
        raise ManifestError(f"invalid {what}: {exc}; refused", what) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{what} is not valid JSON: {exc}", what) from None
    if not isinstance(obj, dict):
        raise ManifestError(f"{what} is not a JSON object", what)
    return obj


def _descriptor(obj: Any, what: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise ManifestError(f"{what}: descriptor is not an object", "manifest")
    digest, size = obj.get("digest"), obj.get("size")
    if not isinstance(digest, str) or ":" not in digest:
        raise ManifestError(f"{what}: descriptor has no valid digest", "manifest")
    if not isinstance(size, int) or size < 0:
        raise ManifestError(f"{what}: descriptor {digest} has no valid size", "manifest")
    platform = None
    plat = obj.get("platform")
    if isinstance(plat, dict) and plat.get("os") and plat.get("architecture"):
        platform = Platform(str(plat["os"]), str(plat["architecture"]), plat.get("variant") or None)
    urls = obj.get("urls") or ()
    annotations = obj.get("annotations") or {}
    return Descriptor(
        media_type=str(obj.get("mediaType") or ""),
        digest=digest,
        size=size,
        platform=platform,
        artifact_type=obj.get("artifactType") or None,
        urls=tuple(str(u) for u in urls) if isinstance(urls, list) else (),
        annotations=dict(annotations) if isinstance(annotations, dict) else {},
    )


def parse_manifest(raw: bytes, content_type: str | None, digest: str) -> ImageManifest | ImageIndex:
    """Parse a manifest GET body; the JSON ``mediaType`` wins, then Content-Type, then shape."""
    obj = _load(raw, "manifest")
    header_type = (content_type or "").split(";")[0].strip()
    media_type = obj.get("mediaType") or ""
    if not media_type:
        if header_type in (*IMAGE_MANIFEST_TYPES, *INDEX_TYPES):
            media_type = header_type
        elif "manifests" in obj:
            media_type = OCI_INDEX
        elif "config" in obj and "layers" in obj:
            media_type = OCI_MANIFEST
    schema = obj.get("schemaVersion")
    if schema == 1 or media_type in (SCHEMA1, SCHEMA1_SIGNED) or "fsLayers" in obj:
        raise UnsupportedManifest(
            f"manifest {digest} is Docker schema1, which is deprecated and not supported; "
            "re-push the image with a current client",
            "manifest",
        )
    if schema != 2:
        raise ManifestError(f"manifest {digest}: schemaVersion {schema!r} is not 2", "manifest")
    if media_type in INDEX_TYPES:
        entries = obj.get("manifests")
        if not isinstance(entries, list):
            raise ManifestError(f"index {digest} has no 'manifests' list", "manifest")
        return ImageIndex(
            media_type, [_descriptor(e, f"index {digest}") for e in entries], digest, raw
        )
    if media_type in IMAGE_MANIFEST_TYPES:
        config = _descriptor(obj.get("config"), f"manifest {digest} config")
        layers = obj.get("layers")
        if not isinstance(layers, list):
            raise ManifestError(f"manifest {digest} has no 'layers' list", "manifest")
        artifact_type = obj.get("artifactType")
        if artifact_type or (config.media_type and config.media_type not in CONFIG_TYPES):
            kind = artifact_type or config.media_type
            raise UnsupportedManifest(
                f"manifest {digest} is an artifact of type {kind}, not a container image",
                "manifest",
            )
        return ImageManifest(
            media_type,
            config,
            [_descriptor(layer, f"manifest {digest} layer") for layer in layers],
            digest,
            raw,
        )
    raise UnsupportedManifest(
        f"manifest {digest} has unsupported media type {media_type or header_type or 'unknown'!r}",
        "manifest",
    )


def select_platform(index: ImageIndex, wanted: Platform) -> Descriptor:
    """The descriptor for ``wanted`` (nested indexes are returned for the caller to open)."""
    candidates = []
    nested = []
    for desc in index.manifests:
        if desc.artifact_type or desc.media_type.startswith("application/vnd.in-toto"):
            continue
        if desc.media_type in INDEX_TYPES and desc.platform is None:
            nested.append(desc)
            continue
        if desc.platform is not None and platform_matches(wanted, desc.platform):
            candidates.append(desc)
    if candidates:
        # prefer an exact variant match, then a descriptor without a variant
        candidates.sort(key=lambda d: d.platform.variant != wanted.variant if d.platform else True)
        return candidates[0]
    if nested:
        return nested[0]
    offered = sorted(
        {str(d.platform) for d in index.manifests if d.platform and d.platform.os != "unknown"}
    )
    raise UnsupportedManifest(
        f"index {index.digest} has no image for platform {wanted}; "
        f"available: {', '.join(offered) or 'none'}",
        "manifest",
    )


def parse_config(raw: bytes, digest: str) -> ImageConfig:
    obj = _load(raw, "config")
    rootfs = obj.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise ManifestError(f"image config {digest} has no rootfs.diff_ids list", "config")
    history = []
    for entry in obj.get("history") or []:
        if isinstance(entry, dict):
            history.append(
                HistoryEntry(
                    created_by=str(entry.get("created_by") or ""),
                    empty_layer=bool(entry.get("empty_layer", False)),
                    created=entry.get("created"),
                )
            )
    return ImageConfig(
        os=obj.get("os"),
        architecture=obj.get("architecture"),
        variant=obj.get("variant"),
        diff_ids=list(diff_ids),
        history=history,
        raw=raw,
    )
