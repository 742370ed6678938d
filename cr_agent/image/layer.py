"""One layer, read once as a stream: decompress, walk the tar, keep only wanted files.

The result, :class:`LayerContents`, depends only on the layer's bytes and on which files the
catalogers want, so it can be cached by diffID + reader versions and shared between images.
Whiteouts and opaque directories are recorded, not applied: applying them is the merge step's
job (:mod:`cr_agent.image.filesystem`).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from cr_agent.catalogers.base import Cataloger
from cr_agent.image.budget import ImageBudget
from cr_agent.image.decompress import DecompressionError, Decompressor, LayerTooLarge
from cr_agent.image.tar_stream import (
    DIRECTORY,
    HARDLINK,
    REGULAR,
    SYMLINK,
    TarEntry,
    TarError,
    TarReader,
)

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
#: directories deeper than this are not recorded; a directory only matters to the merge when
#: it replaces a lower layer's symlink, which in practice happens near the root (lib, var/run)
MAX_DIR_DEPTH = 4
#: merged-/usr layouts (Debian 12, Fedora): a file under usr/lib is also visible as lib/...
USR_MERGE = ("usr/lib/", "usr/lib64/", "usr/bin/", "usr/sbin/")
MAX_WARNINGS_PER_KIND = 5
SERIAL_MAGIC = b"CRLAYER1"


def normalise_path(name: str) -> str | None:
    """Path without leading ``/`` or ``./``; None when it climbs out with ``..``."""
    if not name.startswith(("/", ".")) and "/." not in name and "//" not in name:
        return name.rstrip("/")  # the common case: already clean
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            return None
        parts.append(part)
    return "/".join(parts)


class FileSelector:
    """Which files to keep, and how large each may be: the union of the catalogers' wishes."""

    def __init__(self, catalogers: Sequence[Cataloger], max_file_size: int) -> None:
        self.catalogers = list(catalogers)
        self.max_file_size = max_file_size
        # Thousands of tar entries per layer, almost none wanted: when every reader says where
        # its paths start, one C-level startswith turns the others away without asking each
        # reader (and the usr-merge alias) in Python.
        prefixes: list[str] | None = []
        for cataloger in self.catalogers:
            hint = cataloger.path_prefixes
            if hint is None or prefixes is None:
                prefixes = None
            else:
                prefixes.extend(hint)
        self._prefixes = None if prefixes is None else tuple(prefixes)

    def cap(self, path: str) -> int | None:
        """Largest size any cataloger accepts for ``path`` (capped), or None if unwanted."""
        prefixes = self._prefixes
        if (
            prefixes is not None
            and not path.startswith(prefixes)
            and not (path.startswith(USR_MERGE) and path.startswith(prefixes, 4))
        ):
            return None
        best: int | None = None
        for cataloger in self.catalogers:
            if cataloger.wants(path):
                size = min(cataloger.max_file_size, self.max_file_size)
                best = size if best is None else max(best, size)
        if best is None and path.startswith(USR_MERGE):
            return self.cap(path[4:])  # every USR_MERGE prefix is "usr/" + a root directory
        return best

    def wants(self, path: str) -> bool:
        if self._prefixes is not None and not path.startswith(self._prefixes):
            return False
        return any(c.wants(path) for c in self.catalogers)

    def cache_token(self) -> str:
        readers = ",".join(sorted(f"{c.name}:{c.version}" for c in self.catalogers))
        return f"{readers};max={self.max_file_size}"


@dataclass(slots=True, eq=True)
class LayerContents:
    """What a layer adds, replaces and deletes, restricted to what the readers need."""

    files: dict[str, bytes] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    hardlinks: dict[str, str] = field(default_factory=dict)  # path -> target path
    whiteouts: list[str] = field(default_factory=list)
    opaque_dirs: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    size: int = 0  # decompressed tar bytes read
    entries: int = 0
    complete: bool = True  # read to the end without trouble; only these are cached

    def to_bytes(self) -> bytes:
        names = list(self.files)
        meta = {
            "files": [[n, len(self.files[n])] for n in names],
            "symlinks": self.symlinks,
            "hardlinks": self.hardlinks,
            "whiteouts": self.whiteouts,
            "opaque_dirs": self.opaque_dirs,
            "dirs": self.dirs,
            "warnings": self.warnings,
            "size": self.size,
            "entries": self.entries,
            "complete": self.complete,
        }
        head = json.dumps(meta, separators=(",", ":")).encode("utf-8", "surrogateescape")
        return b"".join(
            [SERIAL_MAGIC, struct.pack(">Q", len(head)), head, *(self.files[n] for n in names)]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> LayerContents:
        if not data.startswith(SERIAL_MAGIC):
            raise ValueError("not a serialised layer")
        (length,) = struct.unpack(">Q", data[8:16])
        meta = json.loads(data[16 : 16 + length].decode("utf-8", "surrogateescape"))
        pos = 16 + length
        files = {}
        for name, size in meta["files"]:
            files[name] = data[pos : pos + size]
            pos += size
        if pos != len(data):
            raise ValueError("serialised layer has a wrong length")
        return cls(
            files=files,
            symlinks=meta["symlinks"],
            hardlinks=meta["hardlinks"],
            whiteouts=meta["whiteouts"],
            opaque_dirs=meta["opaque_dirs"],
            dirs=meta["dirs"],
            warnings=meta["warnings"],
            size=meta["size"],
            entries=meta["entries"],
            complete=meta["complete"],
        )


class LayerReader:
    """Feed a layer blob's chunks; :meth:`finish` returns its :class:`LayerContents`.

    Damage (truncated or corrupt compression, a bad tar, a bomb) ends the read with a warning
    naming the layer and the problem; the files read up to that point are kept. Passing the
    image's ``budget`` is not damage of this layer: that raises
    :class:`~cr_agent.image.budget.ImageBudgetExceeded` out of :meth:`feed` / :meth:`finish`.
    """

    def __init__(
        self,
        selector: FileSelector,
        *,
        label: str,
        max_layer_bytes: int,
        max_kept_bytes: int = 256 << 20,
        diff_id: str | None = None,
        budget: ImageBudget | None = None,
    ) -> None:
        self.selector = selector
        self.budget = budget
        self._charged_entries = 0
        self.label = label
        self.max_kept_bytes = max_kept_bytes
        self.contents = LayerContents()
        self._kept = 0
        self._counts: dict[str, int] = {}
        self._tar = TarReader(self._select, self._entry)
        self._decompressor = Decompressor(self._on_tar_bytes, limit=max_layer_bytes)
        self._diff_id = diff_id
        self._diff_hash = hashlib.sha256() if diff_id and diff_id.startswith("sha256:") else None
        self._selected: tuple[str, str | None] = ("", "")  # (tar name, its normalise_path)
        self.failed = False

    # -- warnings, at most a few per kind so a hostile layer cannot flood the result

    def _warn(self, kind: str, message: str) -> None:
        count = self._counts.get(kind, 0) + 1
        self._counts[kind] = count
        if count <= MAX_WARNINGS_PER_KIND:
            self.contents.warnings.append(f"layer {self.label}: {message}")
        elif count == MAX_WARNINGS_PER_KIND + 1:
            self.contents.warnings.append(
                f"layer {self.label}: further '{kind}' warnings suppressed"
            )

    def _fail(self, message: str) -> None:
        self.failed = True
        self.contents.complete = False
        self.contents.warnings.append(f"layer {self.label}: {message}")

    # -- stream plumbing

    def feed(self, chunk: bytes) -> None:
        if self.failed:
            return
        try:
            self._decompressor.feed(chunk)
        except LayerTooLarge as exc:
            self._fail(f"{exc}; stopped reading (files read before that are kept)")
        except DecompressionError as exc:
            self._fail(f"{exc}; files read before the damage are kept")
        except TarError as exc:
            self._fail(f"{exc}; files read before the damage are kept")

    def _on_tar_bytes(self, data: bytes) -> None:
        if self._diff_hash is not None:
            self._diff_hash.update(data)
        self.contents.size += len(data)
        if not self._tar.ended:
            self._tar.feed(data)
        if self.budget is not None:
            entries = self._tar.entries - self._charged_entries
            self._charged_entries += entries
            self.budget.charge(len(data), entries)

    def finish(self) -> LayerContents:
        if not self.failed:
            try:
                self._decompressor.finish()
                self._tar.close()
            except (DecompressionError, TarError, LayerTooLarge) as exc:
                self._fail(f"{exc}; files read before the damage are kept")
        if not self.failed and self._diff_hash is not None and self._diff_id:
            actual = "sha256:" + self._diff_hash.hexdigest()
            if actual != self._diff_id:
                self._fail(
                    f"uncompressed content hashes to {actual}, but the image config says "
                    f"{self._diff_id}; layer contents not trusted for caching"
                )
        self.contents.entries = self._tar.entries
        return self.contents

    # -- tar entries

    def _select(self, entry: TarEntry) -> bool:
        path = normalise_path(entry.name)
        self._selected = (entry.name, path)  # _entry, called next, needs it again
        if path is None:
            return False
        cap = self.selector.cap(path)
        if cap is None:
            return False
        if entry.size > cap:
            self._warn(
                "too-large", f"{path} is {entry.size} bytes, over the {cap}-byte limit; not read"
            )
            return False
        if self._kept + entry.size > self.max_kept_bytes:
            self._warn(
                "kept-limit",
                f"{path} not read: the layer passed {self.max_kept_bytes} bytes of wanted files",
            )
            return False
        self._kept += entry.size
        return True

    def _entry(self, entry: TarEntry, data: bytes | None) -> None:
        raw = entry.name
        if raw.startswith("/"):
            self._warn(
                "absolute", f"tar entry {raw!r} has an absolute name; read relative to the root"
            )
        name, path = self._selected
        if name is not raw:
            path = normalise_path(raw)
        if path is None:
            self._warn("dotdot", f"tar entry {raw!r} climbs out of the root with '..'; ignored")
            return
        if not path:
            return
        head, _, base = path.rpartition("/")
        if base.startswith(WHITEOUT_PREFIX):
            if base == OPAQUE_MARKER:
                self.contents.opaque_dirs.append(head)
            elif not base.startswith(".wh..wh."):
                target = f"{head}/{base[4:]}" if head else base[4:]
                self.contents.whiteouts.append(target)
            return
        c = self.contents
        if entry.kind == REGULAR:
            c.symlinks.pop(path, None)
            if data is not None:
                c.files[path] = data
            else:
                c.files.pop(path, None)
        elif entry.kind == SYMLINK:
            c.files.pop(path, None)
            c.symlinks[path] = entry.linkname
        elif entry.kind == HARDLINK:
            link_target = normalise_path(entry.linkname.lstrip("/"))
            if link_target is None:
                self._warn(
                    "dotdot",
                    f"hard link {path!r} -> {entry.linkname!r} climbs out of the root; ignored",
                )
                return
            if self.selector.cap(path) is not None:
                if link_target in c.files:
                    c.files[path] = c.files[link_target]
                else:
                    c.hardlinks[path] = link_target
        elif entry.kind == DIRECTORY:
            if path.count("/") < MAX_DIR_DEPTH:
                c.dirs.append(path)
            c.symlinks.pop(path, None)
