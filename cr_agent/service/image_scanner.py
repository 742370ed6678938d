"""The scan a job runs for one image: credentials -> registry -> size check -> scan -> SBOM.

The size cap is checked from the manifest's layer sizes before a single layer is
downloaded, and the scan is pinned to the manifest digest that was checked, so a tag moved
in between cannot slip a bigger image past the cap.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cr_agent.registry_types import registry_type
from cr_agent.registry_types.base import TypeContext
from cr_agent.service.errors import ImageTooLarge
from cr_agent.service.jobs import ScanOutcome
from cr_agent.service.registry_session import RegistrySession
from shared.credentials import RegistryCredentials

if TYPE_CHECKING:
    from cr_agent.layer_cache import LayerCache


class RegistryImageScanner:
    def __init__(
        self,
        context: Callable[[], TypeContext],
        max_image_bytes: int,
        cache: LayerCache | None = None,
    ) -> None:
        self.context = context
        self.max_image_bytes = max_image_bytes
        self.cache = cache

    async def scan(
        self, creds: RegistryCredentials, image: str, *, platform: str, sbom_format: str
    ) -> ScanOutcome:
        # imported here: the scan pipeline is heavy and the listing API does not need it
        from cr_agent import sbom
        from cr_agent.scan import ScanLimits, scan_image

        kind = registry_type(creds.type)
        async with RegistrySession(creds, kind, self.context()) as session:
            ref, resolved = await session.resolve(image, platform)
            size = sum(layer.size for layer in resolved.manifest.layers)
            if size > self.max_image_bytes:
                raise ImageTooLarge(
                    f"image {image} has {size} bytes of layers; MAX_IMAGE_SIZE_IN_BYTES is "
                    f"{self.max_image_bytes}",
                    "size",
                )
            result = await scan_image(
                session.client,
                ref.repository,
                resolved.digest,
                platform=str(resolved.platform),
                limits=ScanLimits(max_image_bytes=self.max_image_bytes),
                cache=self.cache,
            )
        writer = {
            "cyclonedx-json": sbom.to_cyclonedx_json,
            "spdx-json": sbom.to_spdx_json,
            "native-json": sbom.to_native_json,
        }[sbom_format]
        document = _as_object(writer(result))
        distro = getattr(result, "distro", None)
        packages = getattr(result, "packages", None) or []
        return ScanOutcome(
            digest=resolved.index_digest or resolved.digest,
            platform=str(resolved.platform),
            distro=_distro(distro),
            package_count=len(packages),
            sbom=document,
            warnings=[str(w) for w in getattr(result, "warnings", None) or []],
        )


def _as_object(value: Any) -> dict[str, Any]:
    if isinstance(value, bytes | str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise TypeError("SBOM writer returned something that is not a JSON object")
    return value


def _distro(distro: Any) -> dict[str, Any] | None:
    if distro is None:
        return None
    fields = ("id", "version_id", "pretty_name", "version_codename")
    return {f: getattr(distro, f) for f in fields if getattr(distro, f, None)}
