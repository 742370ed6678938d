"""The base of the readers that turn whole database files into packages.

What every such reader does the same way lives here once: refuse a file over the size cap
with a warning, run the parser under :func:`~cr_agent.catalogers.reader_guard.guarded`, and
drop a package an earlier database of the same image already listed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import ClassVar

from cr_agent.catalogers.base import CatalogResult, Package


class FileCataloger:
    """Shared steps of the file-based readers; subclasses write ``wants`` and ``catalog``."""

    name: str
    version: str
    max_file_size: int
    #: strings every wanted path starts with (see :class:`~cr_agent.catalogers.base.Cataloger`)
    path_prefixes: tuple[str, ...]
    #: say so in a warning when an earlier database already listed a package
    warn_duplicates: ClassVar[bool] = False

    def read_file(
        self,
        path: str,
        data: bytes,
        parse: Callable[[], CatalogResult],
        warnings: list[str],
        limit: int | None = None,
    ) -> CatalogResult | None:
        """``parse()``'s result, its warnings appended to ``warnings``; None (and a warning)
        when ``data`` is over the size cap (``limit``, by default ``max_file_size``)."""
        from cr_agent.catalogers.reader_guard import guarded

        cap = self.max_file_size if limit is None else limit
        if len(data) > cap:
            warnings.append(f"{path}: {len(data)} bytes exceeds the {cap}-byte limit; skipped")
            return None
        one = guarded(self.name, path, parse, CatalogResult(), warnings)
        warnings.extend(one.warnings)
        return one

    def identity(self, package: Package) -> Hashable:
        """What makes two listings the same package (de-duplication across databases)."""
        return package.key

    def merge(
        self, result: CatalogResult, packages: Iterable[Package], path: str, known: set[Hashable]
    ) -> None:
        """Append to ``result`` the packages of database ``path`` whose identity is not in
        ``known`` (those of earlier databases), then add this database's to ``known``."""
        added: list[Hashable] = []
        for package in packages:
            identity = self.identity(package)
            if identity in known:
                if self.warn_duplicates:
                    result.warnings.append(
                        f"{path}: {package.name} ({package.arch}) is also listed in an earlier "
                        "file; kept the first"
                    )
                continue
            added.append(identity)
            result.packages.append(package)
        known.update(added)
