"""rpm databases: SQLite ``rpmdb.sqlite``, NDB ``Packages.db`` and BerkeleyDB ``Packages``.

All three hold the same header blobs; only the container differs. The format is decided by
the file's content (SQLite, then NDB, then BerkeleyDB, as go-rpmdb sniffs), not by its name,
so a renamed or converted database is still read.

Locations: ``var/lib/rpm`` (classic), ``usr/lib/sysimage/rpm`` (Fedora 36+, SUSE; often with
``var/lib/rpm`` a symlink to it) and ``usr/share/rpm`` (rpm-ostree / CoreOS).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from functools import partial

from cr_agent.catalogers.base import CatalogResult, Package, PurlRule
from cr_agent.catalogers.file_cataloger import FileCataloger
from cr_agent.catalogers.warning_limit import WarningLog

DB_DIRS = ("var/lib/rpm", "usr/lib/sysimage/rpm", "usr/share/rpm")
# Newest backend first: when a directory holds several (an old Packages left behind after
# a conversion), rpm uses the one its configuration names, which is the newer one.
DB_FILES = ("rpmdb.sqlite", "Packages.db", "Packages")
DB_PATHS = tuple(f"{d}/{f}" for d in DB_DIRS for f in DB_FILES)
# An SQLite write-ahead log with a transaction rpm did not checkpoint (normally empty).
WAL_PATHS = tuple(f"{d}/rpmdb.sqlite-wal" for d in DB_DIRS)

BlobReader = Callable[[bytes, str], tuple[list[bytes], list[str]]]

# gpg-pubkey "packages" are signing keys imported into the database, not installed software.
_NOT_SOFTWARE = frozenset({"gpg-pubkey"})


def _purl_parts(package: Package) -> tuple[str, dict[str, str]]:
    """Purl version ``version-release``, ``epoch`` when the header has one, and ``upstream``
    naming the source rpm."""
    qualifiers: dict[str, str] = {}
    version = f"{package.version}-{package.release}" if package.release else package.version
    if package.epoch is not None:
        qualifiers["epoch"] = str(package.epoch)
    extra = dict(package.extra)
    source_rpm = extra.get("sourcerpm") or extra.get("source_rpm") or extra.get("SourceRPM")
    if source_rpm:
        qualifiers["upstream"] = source_rpm
    return version, qualifiers


#: the rule for every rpm package, from a database or from the rpm manifest
PURL_RULE = PurlRule("rpm", None, _purl_parts)


def sniff(data: bytes) -> tuple[str, BlobReader] | None:
    """(format name, blob reader) for the database in ``data``, or None if unknown."""
    # The format readers are imported only when an image has an rpmdb: a dpkg or apk image's
    # scan (and every process start) skips their import.
    from cr_agent.catalogers.rpm_bdb import is_bdb_hash, read_bdb_blobs
    from cr_agent.catalogers.rpm_ndb import is_ndb, read_ndb_blobs
    from cr_agent.catalogers.rpm_sqlite import is_sqlite, read_sqlite_blobs

    if is_sqlite(data):
        return "sqlite", read_sqlite_blobs
    if is_ndb(data):
        return "ndb", read_ndb_blobs
    if is_bdb_hash(data):
        return "bdb", read_bdb_blobs
    return None


def read_rpmdb(data: bytes, path: str, wal: bytes | None = None) -> CatalogResult:
    """Packages from one rpm database file of any of the three formats.

    ``wal`` is the content of an SQLite database's ``-wal`` file, if the image has one.
    """
    from cr_agent.catalogers.rpm_header import HeaderError, package_from_header
    from cr_agent.catalogers.rpm_sqlite import read_sqlite_blobs

    result = CatalogResult()
    found = sniff(data)
    if found is None:
        result.warnings.append(
            f"{path}: not an rpm database this reader knows (SQLite, NDB or BerkeleyDB hash)"
        )
        return result
    kind, reader = found
    blobs, reader_warnings = (
        read_sqlite_blobs(data, path, wal) if kind == "sqlite" else reader(data, path)
    )
    warnings = WarningLog(path)
    warnings.extend(reader_warnings)
    for number, blob in enumerate(blobs, 1):
        try:
            package = package_from_header(blob, path)
        except HeaderError as exc:
            warnings.append(f"{path}: header {number} of {len(blobs)}: {exc}; skipped")
            continue
        if package.name not in _NOT_SOFTWARE:
            result.packages.append(package)
    if not blobs and not warnings:
        warnings.append(f"{path}: database holds no packages")
    result.warnings = warnings.lines()
    return result


def _identity(package: Package) -> tuple[str, int | None, str, str | None, str | None]:
    return (package.name, package.epoch, package.version, package.release, package.arch)


class RpmCataloger(FileCataloger):
    """Reads rpm databases of every backend from the usual locations."""

    name = "rpm"
    version = "1"
    # Big RHEL images have rpmdbs of a few hundred MB (file lists in every header).
    max_file_size = 512 * 1024 * 1024

    _paths = frozenset(DB_PATHS + WAL_PATHS)
    path_prefixes = DB_PATHS + WAL_PATHS

    def wants(self, path: str) -> bool:
        return path in self._paths

    def identity(self, package: Package) -> Hashable:
        return _identity(package)

    def catalog(self, files: Mapping[str, bytes]) -> CatalogResult:
        result = CatalogResult()
        known: set[Hashable] = set()
        for directory in DB_DIRS:
            present = [f"{directory}/{f}" for f in DB_FILES if f"{directory}/{f}" in files]
            for path in present:
                data = files[path]
                wal = files.get(f"{path}-wal") if path.endswith(".sqlite") else None
                one = self.read_file(
                    path, data, partial(read_rpmdb, data, path, wal), result.warnings
                )
                if one is None or not one.packages:
                    continue  # an empty or unreadable database: try the older one beside it
                for other in present[present.index(path) + 1 :]:
                    result.warnings.append(f"{other}: ignored, {path} is the newer database")
                # The same database reached through two directories lists each once.
                self.merge(result, _first_of_each(one.packages), path, known)
                break
        return result


def _first_of_each(packages: list[Package]) -> list[Package]:
    """``packages`` without a repeat of the same name, epoch, version, release and arch."""
    seen: set[Hashable] = set()
    kept = []
    for package in packages:
        if _identity(package) not in seen:
            seen.add(_identity(package))
            kept.append(package)
    return kept
