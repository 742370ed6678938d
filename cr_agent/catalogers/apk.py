"""apk: ``lib/apk/db/installed`` (Alpine) and ``usr/lib/apk/db/installed`` (Wolfi, Chainguard).

The database is paragraphs of ``X:value`` lines, one letter per field; ``F:``/``R:`` file
lines and the other per-file letters follow the package fields and are not needed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from cr_agent.catalogers.base import CatalogResult, Package
from cr_agent.catalogers.deb822 import decode_text
from cr_agent.catalogers.reader_guard import guarded
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


class ApkCataloger:
    """Reads the apk installed database."""

    name = "apk"
    version = "1"
    max_file_size = 64 * 1024 * 1024

    path_prefixes = DB_PATHS

    def wants(self, path: str) -> bool:
        return path in DB_PATHS

    def catalog(self, files: Mapping[str, bytes]) -> CatalogResult:
        result = CatalogResult()
        for path in DB_PATHS:
            data = files.get(path)
            if data is None:
                continue
            if len(data) > self.max_file_size:
                result.warnings.append(
                    f"{path}: {len(data)} bytes exceeds the {self.max_file_size}-byte limit; skipped"
                )
                continue
            one = guarded(
                self.name,
                path,
                partial(parse_installed, data, path),
                CatalogResult(),
                result.warnings,
            )
            result.warnings.extend(one.warnings)
            # With both paths present (a copied rather than symlinked /lib), one listing wins.
            known = {p.key for p in result.packages}
            result.packages.extend(p for p in one.packages if p.key not in known)
        return result
