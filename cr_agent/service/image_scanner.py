"""The scan a job runs for one image: credentials -> registry -> size check -> scan -> SBOM.

The size cap is checked from the manifest's layer sizes before a single layer is
downloaded, and the scan is pinned to the manifest digest that was checked, so a tag moved
in between cannot slip a bigger image past the cap. The whole scan runs under
``SCAN_DEADLINE_SECONDS`` and each layer under ``LAYER_DEADLINE_SECONDS``: a registry that
drips its bytes ends in a failed result naming the step and the layers still being read,
instead of holding the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cr_agent.registry.errors import DeadlineExceeded
from cr_agent.registry_types import registry_type
from cr_agent.registry_types.base import TypeContext
from cr_agent.service.errors import ImageTooLarge
from cr_agent.service.jobs import ScanOutcome
from cr_agent.service.registry_session import RegistrySession
from shared.credentials import RegistryCredentials

if TYPE_CHECKING:
    from cr_agent.catalogers.base import Distro
    from cr_agent.layer_cache import LayerCache
    from cr_agent.service.settings import Settings


class _ScanWatch:
    """Which step a scan is in and which layers are still being read (for the deadline)."""

    def __init__(self) -> None:
        self.step = "manifest"
        self.layers: list[str] = []
        self.done: set[int] = set()

    def progress(self, event: str, data: dict[str, Any]) -> None:
        if event == "layer_done":
            self.done.add(data["index"])

    def describe(self) -> str:
        if self.step != "layers":
            return f"stopped during {self.step}"
        waiting = [d for i, d in enumerate(self.layers) if i not in self.done]
        more = f" and {len(waiting) - 3} more" if len(waiting) > 3 else ""
        return (
            f"stopped reading layers; {len(self.done)} of {len(self.layers)} read, still "
            f"reading {', '.join(waiting[:3])}{more}"
        )


class RegistryImageScanner:
    def __init__(
        self,
        context: Callable[[], TypeContext],
        max_image_bytes: int,
        cache: LayerCache | None = None,
        *,
        layer_deadline: float | None = None,
        scan_deadline: float | None = None,
        max_uncompressed_bytes: int = 8 << 30,
        max_tar_entries: int = 4_000_000,
    ) -> None:
        self.context = context
        self.max_image_bytes = max_image_bytes
        self.cache = cache
        self.layer_deadline = layer_deadline
        self.scan_deadline = scan_deadline
        self.max_uncompressed_bytes = max_uncompressed_bytes
        self.max_tar_entries = max_tar_entries

    @classmethod
    def from_settings(
        cls, context: Callable[[], TypeContext], settings: Settings, cache: LayerCache | None
    ) -> RegistryImageScanner:
        return cls(
            context,
            settings.MAX_IMAGE_SIZE_IN_BYTES,
            cache,
            layer_deadline=settings.LAYER_DEADLINE_SECONDS,
            scan_deadline=settings.SCAN_DEADLINE_SECONDS,
            max_uncompressed_bytes=settings.MAX_IMAGE_UNCOMPRESSED_BYTES,
            max_tar_entries=settings.MAX_IMAGE_TAR_ENTRIES,
        )

    async def scan(
        self, creds: RegistryCredentials, image: str, *, platform: str, sbom_format: str
    ) -> ScanOutcome:
        watch = _ScanWatch()
        deadline = asyncio.timeout(self.scan_deadline)
        try:
            async with deadline:
                return await self._scan(creds, image, platform, sbom_format, watch)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise DeadlineExceeded(
                f"image {image}: scan not finished within {self.scan_deadline:g} s "
                f"(SCAN_DEADLINE_SECONDS); {watch.describe()}",
                watch.step,
            ) from None

    async def _scan(
        self,
        creds: RegistryCredentials,
        image: str,
        platform: str,
        sbom_format: str,
        watch: _ScanWatch,
    ) -> ScanOutcome:
        # imported here: the scan pipeline is heavy and the listing API does not need it
        from cr_agent import sbom
        from cr_agent.scan import ScanLimits, scan_image

        kind = registry_type(creds.type)
        async with RegistrySession(creds, kind, self.context()) as session:
            _, resolved = await session.resolve(image, platform)
            size = sum(layer.size for layer in resolved.manifest.layers)
            if size > self.max_image_bytes:
                raise ImageTooLarge(
                    f"image {image} has {size} bytes of layers; MAX_IMAGE_SIZE_IN_BYTES is "
                    f"{self.max_image_bytes}",
                    "size",
                )
            watch.step = "layers"
            watch.layers = [layer.digest for layer in resolved.manifest.layers]
            # the image resolved (and size-checked) above is the one scanned: a tag moved since
            # cannot slip in, and the SBOM names the reference asked for and both digests
            result = await scan_image(
                session.client,
                resolved,
                limits=ScanLimits(
                    max_image_bytes=self.max_image_bytes,
                    layer_deadline=self.layer_deadline,
                    max_image_uncompressed_bytes=self.max_uncompressed_bytes,
                    max_image_entries=self.max_tar_entries,
                ),
                cache=self.cache,
                progress=watch.progress,
            )
        watch.step = "sbom"
        build = {
            "cyclonedx-json": sbom.cyclonedx_document,
            "spdx-json": sbom.spdx_document,
            "native-json": sbom.native_document,
        }[sbom_format]
        return ScanOutcome(
            digest=resolved.index_digest or resolved.digest,
            platform=str(resolved.platform),
            distro=_distro(result.distro),
            package_count=len(result.packages),
            sbom=build(result),
            warnings=list(result.warnings),
        )


def _distro(distro: Distro | None) -> dict[str, Any] | None:
    if distro is None:
        return None
    fields = ("id", "version_id", "pretty_name", "version_codename")
    return {f: getattr(distro, f) for f in fields if getattr(distro, f, None)}
