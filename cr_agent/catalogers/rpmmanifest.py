"""Azure Linux / CBL-Mariner distroless: ``var/lib/rpmmanifest/container-manifest-2``.

These images carry no rpmdb; the build writes the output of ``rpm -qa`` with the query format
``%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{INSTALLTIME}\\t%{BUILDTIME}\\t%{VENDOR}\\t%{EPOCH}\\t%{SIZE}
\\t%{ARCH}\\t%{EPOCHNUM}\\t%{SOURCERPM}``, one package a line. No licence is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from cr_agent.catalogers.base import CatalogResult, Package
from cr_agent.catalogers.deb822 import decode_text
from cr_agent.catalogers.file_cataloger import FileCataloger
from cr_agent.catalogers.rpm import DB_PATHS as RPMDB_PATHS
from cr_agent.catalogers.warning_limit import WarningLog, limit_warnings

MANIFEST_PATH = "var/lib/rpmmanifest/container-manifest-2"
_FIELDS = 10


def _epoch(text: str) -> int | None:
    return int(text) if text.isdigit() else None  # "(none)" when the package has no epoch


def parse_manifest(data: bytes, path: str) -> CatalogResult:
    """Packages from a container-manifest-2 file; malformed lines become warnings."""
    from cr_agent.catalogers.rpm_header import split_source_rpm  # only Mariner images need it

    result = CatalogResult()
    warnings: list[str] = WarningLog(path)
    text = decode_text(data, path, warnings)
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != _FIELDS:
            warnings.append(
                f"{path} line {lineno}: {len(fields)} tab-separated fields, expected {_FIELDS}"
            )
            continue
        name, version_release, _installed, _built, vendor, epoch, size, arch, _, sourcerpm = fields
        version, sep, release = version_release.rpartition("-")
        if not name or not sep or not version or not release:
            warnings.append(f"{path} line {lineno}: cannot split {version_release!r} into V-R")
            continue
        source = split_source_rpm(sourcerpm)
        extra = [("sourcerpm", sourcerpm), ("vendor", vendor), ("size", size)]
        result.packages.append(
            Package(
                type="rpm",
                name=name,
                version=version,
                epoch=_epoch(epoch),
                release=release,
                arch=arch or None,
                source_name=source[0] if source else None,
                source_version=f"{source[1]}-{source[2]}" if source else None,
                database=path,
                extra=tuple((k, v) for k, v in extra if v and v != "(none)"),
            )
        )
    result.warnings = limit_warnings(path, warnings)
    return result


class RpmManifestCataloger(FileCataloger):
    """Reads the rpm manifest of Azure Linux / CBL-Mariner distroless images.

    It also asks for the rpmdb paths, only to stand aside when a real database exists: the
    rpm cataloger then reports the same packages, and listing them twice would be wrong.
    """

    name = "rpmmanifest"
    version = "1"
    max_file_size = 512 * 1024 * 1024  # as the rpm cataloger's, so rpmdbs are not refused here
    _manifest_limit = 64 * 1024 * 1024

    path_prefixes = (MANIFEST_PATH, *RPMDB_PATHS)

    def wants(self, path: str) -> bool:
        return path == MANIFEST_PATH or path in RPMDB_PATHS

    def catalog(self, files: Mapping[str, bytes]) -> CatalogResult:
        data = files.get(MANIFEST_PATH)
        result = CatalogResult()
        if data is None or any(path in files for path in RPMDB_PATHS):
            return result
        parse = partial(parse_manifest, data, MANIFEST_PATH)
        one = self.read_file(MANIFEST_PATH, data, parse, result.warnings, self._manifest_limit)
        if one is not None:
            result.packages = one.packages
        return result
