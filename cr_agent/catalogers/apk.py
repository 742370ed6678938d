"""apk: ``lib/apk/db/installed`` (Alpine) and ``usr/lib/apk/db/installed`` (Wolfi, Chainguard).

The database is paragraphs of ``X:value`` lines, one letter per field; ``F:``/``R:`` file
lines and the other per-file letters follow the package fields and are not needed here.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from functools import partial

from cr_agent.catalogers.base import CatalogResult, Package, PurlRule
from cr_agent.catalogers.deb822 import decode_text
from cr_agent.catalogers.file_cataloger import FileCataloger
from cr_agent.catalogers.warning_limit import WarningLog, limit_warnings

DB_PATHS = ("lib/apk/db/installed", "usr/lib/apk/db/installed")

# Package-level letters kept in Package.extra, with readable names.
_EXTRA = {"m": "maintainer", "U": "url", "c": "commit", "C": "checksum", "t": "build_time"}


def _package(fields: dict[str, str], path: str, line: int, warnings: list[str]) -> Package | None:
    name, version = fields.get("P"), fields.get("V")
    if not name or not version:
        missing = "P:" if not name else "V:"
        warnings.append(f"{path} line {line}: package entry has no {missing} line; skipped")
        return None
    origin = fields.get("o") or name
    license_text = " ".join(fields.get("L", "").split())
    return Package(
        type="apk",
        name=name,
        version=version,
        arch=fields.get("A") or None,
        source_name=origin,
        source_version=version,  # apk builds every subpackage from its origin at one version
        licenses=(license_text,) if license_text else (),
        database=path,
        extra=tuple((label, fields[key]) for key, label in _EXTRA.items() if fields.get(key)),
    )


def origin_purl_parts(package: Package) -> tuple[str, dict[str, str]]:
    """Purl version and qualifiers: ``upstream`` (the origin package) only when it differs
    from the package's name (syft: ``OriginPackage != Package``)."""
    qualifiers: dict[str, str] = {}
    if package.source_name and package.source_name != package.name:
        qualifiers["upstream"] = package.source_name
    return package.full_version, qualifiers


PURL_RULE = PurlRule("apk", "alpine", origin_purl_parts)


def parse_installed(data: bytes, path: str) -> CatalogResult:
    """Packages from one apk ``installed`` database."""
    result = CatalogResult(warnings=WarningLog(path))
    text = decode_text(data, path, result.warnings)
    fields: dict[str, str] = {}
    start = 0

    def flush() -> None:
        if fields:
            package = _package(fields, path, start, result.warnings)
            if package is not None:
                result.packages.append(package)

    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            flush()
            fields = {}
            continue
        if len(line) >= 2 and line[1] == ":" and line[0].isascii() and line[0].isalpha():
            if not fields:
                start = lineno
            # Package fields come first; per-file letters (F, R, a, M, Z, ...) may repeat,
            # and the first occurrence of a package letter is the package's own.
            fields.setdefault(line[0], line[2:])
            continue
        result.warnings.append(f"{path} line {lineno}: expected 'X:value', got {line[:60]!r}")
    flush()
    result.warnings = limit_warnings(path, result.warnings)
    return result


class ApkCataloger(FileCataloger):
    """Reads the apk installed database."""

    name = "apk"
    version = "1"
    max_file_size = 64 * 1024 * 1024

    path_prefixes = DB_PATHS

    def wants(self, path: str) -> bool:
        return path in DB_PATHS

    def catalog(self, files: Mapping[str, bytes]) -> CatalogResult:
        result = CatalogResult()
        # With both paths present (a copied rather than symlinked /lib), one listing wins.
        known: set[Hashable] = set()
        for path in DB_PATHS:
            data = files.get(path)
            if data is None:
                continue
            one = self.read_file(path, data, partial(parse_installed, data, path), result.warnings)
            if one is not None:
                self.merge(result, one.packages, path, known)
        return result
