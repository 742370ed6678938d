"""The image as it is after each layer: lower layers merged with whiteouts and opaque
directories applied, restricted to the files the readers want, with symlinks resolved.

Only wanted files are held, plus every symlink (needed to answer "what does etc/os-release
point at"); symlink resolution is confined to the image root and bounded in hops, so a loop
becomes a warning, not a hang.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from cr_agent.image.layer import LayerContents

MAX_HOPS = 40  # as Linux's MAXSYMLINKS


class SymlinkLoop(ValueError):
    pass


def _under(path: str, prefix: str) -> bool:
    return not prefix or path == prefix or path.startswith(prefix + "/")


class ImageFilesystem:
    def __init__(self, max_hops: int = MAX_HOPS) -> None:
        self.files: dict[str, bytes] = {}
        self.symlinks: dict[str, str] = {}
        self.max_hops = max_hops
        self.warnings: list[str] = []
        self._reverse: dict[str, list[str]] | None = None

    # ------------------------------------------------------------------ merging

    def _remove_tree(self, prefix: str, *, keep_self: bool = False) -> None:
        for table in (self.files, self.symlinks):
            doomed = [p for p in table if _under(p, prefix) and not (keep_self and p == prefix)]
            for p in doomed:
                del table[p]

    def apply(self, layer: LayerContents) -> None:
        """Merge one layer on top (OCI rules: its whiteouts hide only lower layers' files)."""
        if layer.symlinks or layer.whiteouts or layer.opaque_dirs or layer.dirs:
            self._reverse = None
        for directory in layer.opaque_dirs:
            self._remove_tree(directory, keep_self=True)
            self.symlinks.pop(directory, None)
            self.files.pop(directory, None)
        for path in layer.whiteouts:
            self._remove_tree(path)
        for directory in layer.dirs:
            # a real directory replaces a lower symlink or file of the same name
            self.symlinks.pop(directory, None)
            self.files.pop(directory, None)
        for path, target in layer.symlinks.items():
            self.files.pop(path, None)
            self.symlinks[path] = target
        for path, data in layer.files.items():
            self.symlinks.pop(path, None)
            self.files[path] = data
        for path, target in layer.hardlinks.items():
            data = layer.files.get(target, self.files.get(target))
            if data is not None:
                self.symlinks.pop(path, None)
                self.files[path] = data
        if layer.symlinks or layer.files:
            self._reverse = None

    # ------------------------------------------------------------------ resolution

    def resolve(self, path: str) -> str:
        """Follow symlinks in every component of ``path``; raises :class:`SymlinkLoop`."""
        pending = [p for p in path.split("/") if p]
        pending.reverse()
        resolved: list[str] = []
        hops = 0
        while pending:
            part = pending.pop()
            if part == ".":
                continue
            if part == "..":
                if resolved:
                    resolved.pop()  # ".." at the root stays at the root, as in a chroot
                continue
            candidate = "/".join([*resolved, part])
            target = self.symlinks.get(candidate)
            if target is None:
                resolved.append(part)
                continue
            hops += 1
            if hops > self.max_hops:
                raise SymlinkLoop(
                    f"symlink loop or more than {self.max_hops} hops resolving {path!r}"
                )
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p]
            pending.extend(reversed(parts))
        return "/".join(resolved)

    def _reverse_index(self) -> dict[str, list[str]]:
        """resolved target -> symlinks that lead there."""
        if self._reverse is not None:
            return self._reverse
        reverse: dict[str, list[str]] = defaultdict(list)
        loops = 0
        for link in self.symlinks:
            try:
                target = self.resolve(link)
            except SymlinkLoop as exc:
                loops += 1
                if loops <= 3:
                    self._note(f"{exc}")
                continue
            if target != link:
                reverse[target].append(link)
        self._reverse = reverse
        return reverse

    def _note(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def view(self, wants: Callable[[str], bool]) -> dict[str, bytes]:
        """Wanted paths -> content, including paths reached through symlinks (aliases)."""
        out = {p: d for p, d in self.files.items() if wants(p)}
        if not self.symlinks:
            return out
        reverse = self._reverse_index()
        if not reverse:
            return out
        for real, data in self.files.items():
            # every ancestor (and the file itself) that some symlink points at gives an alias
            parts = real.split("/")
            for i in range(len(parts), 0, -1):
                prefix = "/".join(parts[:i])
                links = reverse.get(prefix)
                if not links:
                    continue
                rest = real[len(prefix) :]
                for link in links:
                    alias = link + rest
                    if alias not in out and alias not in self.files and wants(alias):
                        out[alias] = data
        return out
