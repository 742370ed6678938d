"""dpkg: ``var/lib/dpkg/status`` and distroless ``var/lib/dpkg/status.d/*``.

Distroless images have no ``status`` file; each package gets its own file in ``status.d``
(one or more paragraphs, usually without a ``Status`` field). Licences come from DEP-5
copyright files where the package ships one.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from dataclasses import replace
from functools import partial

from cr_agent.catalogers.base import CatalogResult, Package, PurlRule
from cr_agent.catalogers.deb822 import Paragraph, parse_paragraphs
from cr_agent.catalogers.debian_copyright import licenses_from_copyright
from cr_agent.catalogers.file_cataloger import FileCataloger
from cr_agent.catalogers.reader_guard import guarded
from cr_agent.catalogers.warning_limit import limit_warnings

STATUS_PATH = "var/lib/dpkg/status"
STATUS_D_PREFIX = "var/lib/dpkg/status.d/"
DOC_PREFIX = "usr/share/doc/"
LICENCE_MEMO_LIMIT = 4096

_SOURCE = re.compile(r"([A-Za-z0-9][A-Za-z0-9.+~_-]*)(?:\s*\(([^()]*)\))?")
_EPOCH = re.compile(r"([0-9]+):(.+)")


def split_epoch(version: str) -> tuple[int | None, str]:
    """``1:2.3-4`` -> (1, ``2.3-4``); no epoch -> (None, version)."""
    match = _EPOCH.fullmatch(version)
    if match is None:
        return None, version
    return int(match.group(1)), match.group(2)


def _purl_parts(package: Package) -> tuple[str, dict[str, str]]:
    """Purl version (dpkg's full version, epoch included, as syft writes it) and ``upstream``
    only when the source package differs (``src`` or ``src@version``)."""
    qualifiers: dict[str, str] = {}
    version = package.full_version
    if package.source_name and package.source_name != package.name:
        if package.source_version and package.source_version != version:
            qualifiers["upstream"] = f"{package.source_name}@{package.source_version}"
        else:
            qualifiers["upstream"] = package.source_name
    elif package.source_version and package.source_version != version:
        qualifiers["upstream"] = f"{package.name}@{package.source_version}"
    return version, qualifiers


PURL_RULE = PurlRule("deb", "debian", _purl_parts)


def _installed(status: str | None) -> bool:
    # Status is "want flag state"; only a package whose files are on disk counts.
    if status is None:
        return True  # distroless status.d paragraphs carry no Status field
    words = status.split()
    return len(words) == 3 and words[0] in ("install", "hold") and words[2] == "installed"


def _package(paragraph: Paragraph, path: str, warnings: list[str]) -> Package | None:
    name = paragraph.get("Package")
    version = paragraph.get("Version")
    if not name or not version:
        missing = "Package" if not name else "Version"
        warnings.append(f"{path} line {paragraph.line}: paragraph has no {missing} field; skipped")
        return None
    if not _installed(paragraph.get("Status")):
        return None
    epoch, plain_version = split_epoch(version)
    source_name, source_version = name, version  # dpkg's own default when Source is absent
    source = paragraph.get("Source")
    if source:
        match = _SOURCE.fullmatch(source.strip())
        if match is None:
            warnings.append(f"{path} line {paragraph.line}: cannot read Source {source!r}")
        else:
            source_name = match.group(1)
            source_version = match.group(2).strip() if match.group(2) else version
    extra = tuple(
        (key, value)
        for key, value in (
            ("maintainer", paragraph.get("Maintainer")),
            ("installed_size", paragraph.get("Installed-Size")),
            ("multi_arch", paragraph.get("Multi-Arch")),
        )
        if value
    )
    return Package(
        type="deb",
        name=name,
        version=plain_version,
        epoch=epoch,
        arch=paragraph.get("Architecture") or None,
        source_name=source_name,
        source_version=source_version,
        database=path,
        extra=extra,
    )


def read_status(data: bytes, path: str) -> CatalogResult:
    """Installed packages from one status file or one status.d file."""
    result = CatalogResult()
    outcome = parse_paragraphs(data, path)
    warnings = outcome.warnings
    if not outcome.paragraphs and data.strip():
        warnings.append(f"{path}: no package paragraphs found")
    seen: set[tuple[str, str | None]] = set()
    for paragraph in outcome.paragraphs:
        package = _package(paragraph, path, warnings)
        if package is None:
            continue
        if (package.name, package.arch) in seen:
            warnings.append(
                f"{path} line {paragraph.line}: {package.name} ({package.arch}) listed twice; "
                "kept the first"
            )
            continue
        seen.add((package.name, package.arch))
        result.packages.append(package)
    result.warnings = limit_warnings(path, warnings)
    return result


class DpkgCataloger(FileCataloger):
    """Reads the dpkg status database (full and distroless forms)."""

    name = "dpkg"
    version = "1"
    max_file_size = 64 * 1024 * 1024

    path_prefixes = (STATUS_PATH, DOC_PREFIX)  # STATUS_PATH also starts status.d/
    warn_duplicates = True

    def __init__(self) -> None:
        # Licences per (path, copyright file bytes): a scan catalogs the image again after
        # each layer that touches dpkg's files, and the copyright files rarely change between
        # those runs (a Debian base has ~100 of them, ~10 us each to parse).
        self._licence_memo: dict[tuple[str, bytes], tuple[tuple[str, ...], list[str]]] = {}

    def wants(self, path: str) -> bool:
        if path == STATUS_PATH:
            return True
        if path.startswith(STATUS_D_PREFIX):
            rest = path[len(STATUS_D_PREFIX) :]
            return bool(rest) and "/" not in rest and not rest.endswith(".md5sums")
        if path.startswith(DOC_PREFIX) and path.endswith("/copyright"):
            return path.count("/") == 4  # usr/share/doc/<pkg>/copyright, nothing deeper
        return False

    def catalog(self, files: Mapping[str, bytes]) -> CatalogResult:
        result = CatalogResult()
        databases = sorted(p for p in files if p == STATUS_PATH or p.startswith(STATUS_D_PREFIX))
        known: set[Hashable] = set()
        for path in databases:
            data = files[path]
            one = self.read_file(path, data, partial(read_status, data, path), result.warnings)
            if one is not None:
                self.merge(result, one.packages, path, known)
        licenses: dict[str, tuple[str, ...]] = {}
        result.packages = [
            self._with_licenses(p, files, licenses, result.warnings) for p in result.packages
        ]
        return result

    def _with_licenses(
        self,
        package: Package,
        files: Mapping[str, bytes],
        cache: dict[str, tuple[str, ...]],
        warnings: list[str],
    ) -> Package:
        path = f"{DOC_PREFIX}{package.name}/copyright"
        if path not in cache:
            data = files.get(path)
            if data is None:
                return package
            # Multi-Arch: same packages of several architectures share one doc directory.
            memo_key = (path, data)
            found = self._licence_memo.get(memo_key)
            if found is None:
                nothing: tuple[tuple[str, ...], list[str]] = ((), [])
                found = guarded(
                    self.name,
                    path,
                    partial(licenses_from_copyright, data, path),
                    nothing,
                    warnings,
                )
                if found is not nothing:  # a reader failure is reported on every run
                    if len(self._licence_memo) >= LICENCE_MEMO_LIMIT:
                        self._licence_memo.clear()  # an instance reused for many images
                    self._licence_memo[memo_key] = found
            licenses, found_warnings = found
            warnings.extend(found_warnings)
            cache[path] = licenses
        if not cache[path]:
            return package
        return replace(package, licenses=cache[path])
