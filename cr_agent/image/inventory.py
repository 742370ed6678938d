"""Package inventory with per-layer attribution.

Layers are merged bottom-up; after each, every cataloger whose wanted files changed runs again
on the image as it is at that point. A package (by type/name/arch and full version) that was
not present below is attributed to that layer; one that disappears (an upper layer removed it)
is dropped, and if it comes back later it belongs to the layer that brought it back.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from cr_agent.catalogers.base import Cataloger, CatalogResult, Distro, Package
from cr_agent.image.filesystem import ImageFilesystem
from cr_agent.image.layer import FileSelector, LayerContents
from shared.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AttributedPackage:
    package: Package
    layer_index: int


@dataclass(slots=True)
class Inventory:
    packages: list[AttributedPackage] = field(default_factory=list)
    distro: Distro | None = None
    warnings: list[str] = field(default_factory=list)


class CatalogMemo:
    """Results per (reader, version, exact input files): images sharing base layers hand the
    same dpkg status to dpkg many times; parse it once."""

    def __init__(self, max_entries: int = 256) -> None:
        self._entries: OrderedDict[tuple[str, str, str], CatalogResult] = OrderedDict()
        self.max_entries = max_entries
        self._lock = threading.Lock()  # scans build inventories in worker threads

    @staticmethod
    def _fingerprint(files: dict[str, bytes]) -> str:
        h = hashlib.blake2b(digest_size=20)
        for path in sorted(files):
            h.update(path.encode("utf-8", "surrogateescape") + b"\0")
            h.update(len(files[path]).to_bytes(8, "big"))
            h.update(files[path])
        return h.hexdigest()

    def run(self, cataloger: Cataloger, files: dict[str, bytes]) -> CatalogResult:
        key = (cataloger.name, cataloger.version, self._fingerprint(files))
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit
        try:
            result = cataloger.catalog(files)
        except Exception as exc:  # a reader bug must not sink the whole scan
            log.warning("cataloger_failed", cataloger=cataloger.name, error=repr(exc))
            result = CatalogResult(warnings=[f"reader failed: {type(exc).__name__}: {exc}"])
        with self._lock:
            self._entries[key] = result
            if len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return result


DEFAULT_MEMO = CatalogMemo()


def build_inventory(
    layers: Sequence[LayerContents],
    catalogers: Sequence[Cataloger],
    *,
    memo: CatalogMemo | None = None,
) -> Inventory:
    memo = memo or DEFAULT_MEMO
    selector = FileSelector(catalogers, 1 << 62)
    fs = ImageFilesystem()
    last_view: dict[str, dict[str, bytes]] = {c.name: {} for c in catalogers}
    results: dict[str, CatalogResult] = {c.name: CatalogResult() for c in catalogers}
    introduced: dict[tuple[tuple[str, str, str | None], str], int] = {}
    for index, layer in enumerate(layers):
        fs.apply(layer)
        view = fs.view(selector.wants)
        changed = False
        for cataloger in catalogers:
            mine = {p: d for p, d in view.items() if cataloger.wants(p)}
            if mine == last_view[cataloger.name]:
                continue
            last_view[cataloger.name] = mine
            results[cataloger.name] = memo.run(cataloger, mine) if mine else CatalogResult()
            changed = True
        if not changed:
            continue
        present = set()
        for result in results.values():
            for package in result.packages:
                key = (package.key, package.full_version)
                present.add(key)
                introduced.setdefault(key, index)
        for key in [k for k in introduced if k not in present]:
            del introduced[key]
    inventory = Inventory()
    for cataloger in catalogers:
        result = results[cataloger.name]
        if result.distro is not None and inventory.distro is None:
            inventory.distro = result.distro
        inventory.warnings.extend(f"{cataloger.name}: {w}" for w in result.warnings)
        for package in result.packages:
            layer_index = introduced.get((package.key, package.full_version), len(layers) - 1)
            inventory.packages.append(AttributedPackage(package, layer_index))
    inventory.warnings.extend(fs.warnings)
    return inventory
