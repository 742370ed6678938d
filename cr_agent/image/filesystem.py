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


class SymlinkLoop(Exception):
    """A path passes more than ``MAX_HOPS`` symlinks (a loop, or a chain built to waste time)."""


class ImageFilesystem:
    def __init__(self, max_hops: int = MAX_HOPS) -> None:
        self.files: dict[str, bytes] = {}
        self.symlinks: dict[str, str] = {}
        self.max_hops = max_hops
        self.warnings: list[str] = []
        # rebuilt when symlinks change or file names appear/disappear (see _candidate_links)
        self._reverse: dict[str, list[str]] | None = None

    # ------------------------------------------------------------------ merging

    def _remove_trees(self, roots: set[str], *, keep_roots: bool = False) -> None:
        """Drop every entry at or under one of ``roots`` (one pass, however many roots)."""
        if not roots:
            return
        for table in (self.files, self.symlinks):
            doomed = []
            for path in table:
                if path in roots:
                    if not keep_roots:
                        doomed.append(path)
                    continue
                parent = path
                while "/" in parent:
                    parent = parent.rpartition("/")[0]
                    if parent in roots:
                        doomed.append(path)
                        break
            for path in doomed:
                del table[path]
            if doomed:
                self._reverse = None

    def apply(self, layer: LayerContents) -> None:
        """Merge one layer on top (OCI rules: its whiteouts hide only lower layers' files)."""
        if layer.opaque_dirs:
            self._remove_trees(set(layer.opaque_dirs), keep_roots=True)
        self._remove_trees(set(layer.whiteouts))
        for directory in layer.dirs:
            # a real directory replaces a lower symlink or file of the same name
            if self.symlinks.pop(directory, None) is not None:
                self._reverse = None
            if self.files.pop(directory, None) is not None:
                self._reverse = None
        for path, target in layer.symlinks.items():
            self.files.pop(path, None)
            self.symlinks[path] = target
        if layer.symlinks:
            self._reverse = None
        for path, data in layer.files.items():
            if self.symlinks.pop(path, None) is not None or path not in self.files:
                self._reverse = None
            self.files[path] = data
        for path, target in layer.hardlinks.items():
            linked = layer.files.get(target, self.files.get(target))
            if linked is not None:
                if self.symlinks.pop(path, None) is not None or path not in self.files:
                    self._reverse = None
                self.files[path] = linked

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

    def _candidate_links(self, wants: Callable[[str], bool]) -> list[str]:
        """Symlinks that can possibly lead to a kept file.

        A link resolves to a path whose last component is its target's last component (or,
        through a chain, another link's name). Only links whose target ends in a name that a
        kept file's path contains, or in another candidate's name, or in "."/"..", can alias a
        kept file; the thousands of ``libfoo.so -> libfoo.so.1`` links are skipped without
        being resolved.
        """
        names: set[str] = set()
        for path in self.files:
            names.update(path.split("/"))
        by_last: dict[str, list[str]] = defaultdict(list)
        for link, target in self.symlinks.items():
            last = target.rstrip("/").rpartition("/")[2]
            by_last[last].append(link)
        # a wanted path that is itself a link is always resolved, so a loop there is reported
        chosen: set[str] = {link for link in self.symlinks if wants(link)}
        frontier = [n for n in names | {"", ".", ".."} if n in by_last]
        while frontier:
            name = frontier.pop()
            for link in by_last.pop(name, ()):
                if link not in chosen:
                    chosen.add(link)
                    base = link.rpartition("/")[2]
                    if base in by_last:
                        frontier.append(base)
        return sorted(chosen)

    def _reverse_index(self, wants: Callable[[str], bool]) -> dict[str, list[str]]:
        """resolved target -> symlinks that lead there (only links that can matter)."""
        if self._reverse is not None:
            return self._reverse
        reverse: dict[str, list[str]] = defaultdict(list)
        loops = 0
        for link in self._candidate_links(wants):
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
        reverse = self._reverse_index(wants)
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
