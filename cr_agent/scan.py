"""Image reference in, inventory out: resolve the manifest, read every layer once (in
parallel, bounded, through the layer cache), merge bottom-up and attribute each package to the
layer that introduced it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cr_agent.catalogers import default_catalogers
from cr_agent.catalogers.base import Cataloger, Distro, Package
from cr_agent.image.budget import ImageBudget, ImageBudgetExceeded
from cr_agent.image.inventory import build_inventory
from cr_agent.image.layer import FileSelector, LayerContents, LayerReader
from cr_agent.registry.client import RegistryClient, ResolvedImage
from cr_agent.registry.errors import DeadlineExceeded, NotFoundError, RegistryError
from cr_agent.registry.manifest import Descriptor
from shared.logging import get_logger

if TYPE_CHECKING:  # the cache module (and its tempfile import) loads only when a cache is used
    from cr_agent.layer_cache import LayerCache

log = get_logger(__name__)

Progress = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class ScanLimits:
    max_layer_bytes: int = 16 << 30  # decompressed, per layer: stops gzip/zstd bombs
    max_file_bytes: int = 64 << 20  # per wanted file (readers may ask for less)
    max_kept_bytes: int = 256 << 20  # wanted files kept per layer
    max_image_bytes: int = 20 << 30  # compressed, whole image (sum of layer sizes)
    layer_concurrency: int = 3
    verify_diff_ids: bool = True
    #: seconds one layer may take from its request to its last byte read; None: no bound
    layer_deadline: float | None = None
    #: decompressed bytes and tar entries over all layers of the image (thousands of small
    #: bombs pass every per-layer cap)
    max_image_uncompressed_bytes: int = 64 << 30
    max_image_entries: int = 50_000_000


@dataclass(slots=True)
class LayerInfo:
    """One layer of the scanned image; the last three fields are filled in once it is read."""

    index: int
    digest: str
    diff_id: str
    size: int
    media_type: str
    created_by: str | None
    from_cache: bool = False
    uncompressed_size: int = 0
    entries: int = 0


@dataclass(frozen=True, slots=True)
class PackageRecord:
    package: Package
    layer_index: int
    layer_diff_id: str
    layer_created_by: str | None


@dataclass(slots=True)
class ScanResult:
    repository: str
    reference: str  # as the caller asked for it: a tag or a digest
    digest: str  # platform-specific manifest
    index_digest: str | None
    platform: str
    config_digest: str
    registry: str | None = None
    distro: Distro | None = None
    layers: list[LayerInfo] = field(default_factory=list)
    packages: list[PackageRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def image_name(self) -> str:
        prefix = f"{self.registry}/" if self.registry else ""
        return f"{prefix}{self.repository}"


#: Layer work (hashing, inflating, tar walking) runs here: hashlib and isal release the GIL,
#: so layers of one image (and concurrent scans) use more than one core, and the event loop
#: stays free to serve requests while a 1 GB layer is read.
_POOL: ThreadPoolExecutor | None = None
#: compressed bytes handed to a worker at a time: big enough to make the hop cheap
BATCH = 1 << 20


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(
            max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="layer"
        )
    return _POOL


@dataclass(slots=True)
class _LayerWatch:
    """Where a layer read is, for the message when its deadline passes."""

    step: str = "blob request"
    received: int = 0


async def _read_layer(
    client: RegistryClient,
    repository: str,
    desc: Descriptor,
    diff_id: str | None,
    index: int,
    label: str,
    selector: FileSelector,
    limits: ScanLimits,
    progress: Progress | None,
    budget: ImageBudget,
) -> LayerContents:
    """One layer under its overall deadline (every read may be in time, the whole not)."""
    reader = LayerReader(
        selector,
        label=label,
        max_layer_bytes=limits.max_layer_bytes,
        max_kept_bytes=limits.max_kept_bytes,
        diff_id=diff_id,
        budget=budget,
    )
    deadline = asyncio.timeout(limits.layer_deadline)
    watch = _LayerWatch()
    try:
        async with deadline:
            return await _stream_layer(client, repository, desc, reader, watch, index, progress)
    except TimeoutError:
        if not deadline.expired():
            raise
        raise DeadlineExceeded(
            f"layer {desc.digest} (index {index}) not read within {limits.layer_deadline:g} s "
            f"(LAYER_DEADLINE_SECONDS): stopped during {watch.step} after {watch.received} of "
            f"{desc.size} bytes",
            "blob" if watch.step.startswith("blob") else "layer",
        ) from None
    except ImageBudgetExceeded as exc:
        raise ImageBudgetExceeded(f"layer {desc.digest} (index {index}): {exc}") from None


async def _stream_layer(
    client: RegistryClient,
    repository: str,
    desc: Descriptor,
    reader: LayerReader,
    watch: _LayerWatch,
    index: int,
    progress: Progress | None,
) -> LayerContents:
    loop = asyncio.get_running_loop()
    try:
        async with client.open_blob(repository, desc.digest, desc.size) as stream:

            def work(data: bytes) -> None:
                stream.update(data)
                reader.feed(data)

            pending: asyncio.Future[None] | None = None
            batch: list[bytes] = []
            batched = 0
            watch.step = "blob download"
            async for chunk in stream.chunks(verify=False):
                watch.received += len(chunk)
                batch.append(chunk)
                batched += len(chunk)
                if progress is not None:
                    progress("layer_bytes", {"index": index, "bytes": len(chunk)})
                if batched < BATCH:
                    continue
                data = b"".join(batch)
                batch.clear()
                batched = 0
                if pending is not None:
                    await pending  # keep order; the next batch downloads meanwhile
                if reader.failed:
                    break
                pending = loop.run_in_executor(_pool(), work, data)
            watch.step = "decompression and tar reading"
            if pending is not None:
                await pending
            if not reader.failed:
                if batch:
                    await loop.run_in_executor(_pool(), work, b"".join(batch))
                stream.verify()
            return await loop.run_in_executor(_pool(), reader.finish)
    except NotFoundError:
        if desc.urls or "nondistributable" in desc.media_type or "foreign" in desc.media_type:
            return LayerContents(
                warnings=[
                    f"layer {reader.label}: foreign layer not stored in the registry; not read"
                ],
                complete=False,
            )
        raise


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The first real error of a task group, so callers see a RegistryError, not a group."""
    first = group.exceptions[0]
    return _first_error(first) if isinstance(first, BaseExceptionGroup) else first


async def scan_reference(
    client: RegistryClient,
    repository: str,
    reference: str,
    *,
    platform: str = "linux/amd64",
    cache: LayerCache | None = None,
    limits: ScanLimits | None = None,
    catalogers: Sequence[Cataloger] | None = None,
    progress: Progress | None = None,
) -> ScanResult:
    """Resolve ``repository:reference`` for ``platform``, then :func:`scan_image` it."""
    resolved = await client.resolve_image(repository, reference, platform)
    return await scan_image(
        client, resolved, cache=cache, limits=limits, catalogers=catalogers, progress=progress
    )


async def scan_image(
    client: RegistryClient,
    resolved: ResolvedImage,
    *,
    cache: LayerCache | None = None,
    limits: ScanLimits | None = None,
    catalogers: Sequence[Cataloger] | None = None,
    progress: Progress | None = None,
) -> ScanResult:
    """Scan one resolved image; registry trouble raises :class:`RegistryError` subclasses,
    damaged layers and unreadable databases become warnings in the result."""
    started = time.monotonic()
    limits = limits or ScanLimits()
    readers = list(catalogers) if catalogers is not None else default_catalogers()
    selector = FileSelector(readers, limits.max_file_bytes)
    repository = resolved.repository
    manifest, config = resolved.manifest, resolved.config
    total = sum(d.size for d in manifest.layers)
    if total > limits.max_image_bytes:
        raise RegistryError(
            f"image {repository}@{resolved.digest} has {total} bytes of layers, over the "
            f"{limits.max_image_bytes}-byte limit",
            "manifest",
        )
    history = config.layer_history()
    layers = [
        LayerInfo(i, d.digest, config.diff_ids[i], d.size, d.media_type, history[i])
        for i, d in enumerate(manifest.layers)
    ]
    if progress is not None:
        progress("resolved", {"digest": resolved.digest, "layers": len(layers), "bytes": total})
    semaphore = asyncio.Semaphore(max(1, limits.layer_concurrency))
    contents: list[LayerContents | None] = [None] * len(layers)
    token = selector.cache_token()
    budget = ImageBudget(limits.max_image_uncompressed_bytes, limits.max_image_entries)

    async def load(info: LayerInfo) -> None:
        desc = manifest.layers[info.index]

        async def loader() -> LayerContents:
            # the diffID is checked only when the result goes into the cache, which is keyed
            # by it: without a cache the verified compressed digest already vouches for the bytes
            check = info.diff_id if cache is not None and limits.verify_diff_ids else None
            label = f"{info.index} ({info.diff_id[:19]})"
            async with semaphore:
                return await _read_layer(
                    client,
                    repository,
                    desc,
                    check,
                    info.index,
                    label,
                    selector,
                    limits,
                    progress,
                    budget,
                )

        if cache is not None:
            result, hit = await cache.get_or_load(cache.key(info.diff_id, token), loader)
        else:
            result, hit = await loader(), False
        if hit:  # read earlier (or by another scan): it costs this image what it cost then
            try:
                budget.charge(result.size, result.entries)
            except ImageBudgetExceeded as exc:
                raise ImageBudgetExceeded(
                    f"layer {desc.digest} (index {info.index}): {exc}"
                ) from None
        info.from_cache = hit
        info.uncompressed_size = result.size
        info.entries = result.entries
        contents[info.index] = result
        if progress is not None:
            progress("layer_done", {"index": info.index, "cached": hit})

    try:
        async with asyncio.TaskGroup() as group:
            for info in layers:
                group.create_task(load(info))
    except BaseExceptionGroup as group_error:
        raise _first_error(group_error) from None
    read = [c for c in contents if c is not None]
    # readers parse whole databases: keep that off the event loop too
    inventory = await asyncio.get_running_loop().run_in_executor(
        _pool(), build_inventory, read, readers
    )
    warnings = [w for c in read for w in c.warnings] + inventory.warnings
    records = [
        PackageRecord(
            a.package,
            a.layer_index,
            layers[a.layer_index].diff_id,
            layers[a.layer_index].created_by,
        )
        for a in inventory.packages
    ]
    records.sort(
        key=lambda r: (r.package.type, r.package.name, r.package.arch or "", r.layer_index)
    )
    return ScanResult(
        repository=repository,
        reference=resolved.reference,
        digest=resolved.digest,
        index_digest=resolved.index_digest,
        platform=str(resolved.platform),
        config_digest=manifest.config.digest,
        registry=client.host,
        distro=inventory.distro,
        layers=layers,
        packages=records,
        warnings=warnings,
        duration_seconds=time.monotonic() - started,
    )
