"""Distribution detection: os-release first, then the distro-specific release files.

os-release is authoritative wherever it exists; the older release files only fill in for
images that lack it (CentOS 6, old SUSE, hand-built roots). The most specific file wins, so
``debian_version`` (which Ubuntu also ships, saying "bookworm/sid") comes last.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from functools import partial

from cr_agent.catalogers.base import CatalogResult, Distro
from cr_agent.catalogers.reader_guard import guarded

OS_RELEASE_PATHS = ("etc/os-release", "usr/lib/os-release")

# Release files that hold one line such as "Rocky Linux release 8.9 (Green Obsidian)".
_RELEASE_LINE_PATHS = (
    "etc/centos-release",
    "etc/rocky-release",
    "etc/almalinux-release",
    "etc/oracle-release",
    "etc/fedora-release",
    "usr/lib/fedora-release",
    "etc/redhat-release",
    "etc/system-release",
    "usr/lib/system-release",
)

FALLBACK_PATHS = (
    "etc/lsb-release",
    "etc/alpine-release",
    *_RELEASE_LINE_PATHS,
    "etc/system-release-cpe",
    "etc/SuSE-release",
    "etc/debian_version",
)

# Longest names first so "CentOS Stream" is not read as plain "CentOS" by accident, etc.
_RELEASE_NAMES: tuple[tuple[str, str], ...] = (
    ("red hat enterprise linux", "rhel"),
    ("centos stream", "centos"),
    ("centos", "centos"),
    ("rocky linux", "rocky"),
    ("almalinux", "almalinux"),
    ("oracle linux", "ol"),
    ("enterprise linux", "ol"),  # Oracle Linux 5 said "Enterprise Linux Enterprise Linux Server"
    ("fedora", "fedora"),
    ("amazon linux ami", "amzn"),
    ("amazon linux", "amzn"),
    ("cbl-mariner", "mariner"),
    ("azure linux", "azurelinux"),
    ("photon", "photon"),
    ("opensuse", "opensuse"),
    ("suse linux enterprise", "sles"),
    ("scientific linux", "scientific"),
)

_MAX_TEXT = 64 * 1024  # release files are a few hundred bytes; ignore the rest of anything bigger


def _text(data: bytes) -> str:
    return data[:_MAX_TEXT].decode("utf-8", errors="replace")


def parse_os_release(data: bytes, path: str, warnings: list[str]) -> dict[str, str]:
    """Parse os-release's shell-style ``KEY=value`` lines; bad lines become warnings."""
    fields: dict[str, str] = {}
    bad = 0
    for lineno, raw in enumerate(_text(data).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            bad += 1
            if bad <= 3:
                warnings.append(f"{path} line {lineno}: expected KEY=value, got {raw[:60]!r}")
            continue
        try:
            parts = shlex.split(value, posix=True)
        except ValueError as exc:  # unbalanced quotes
            warnings.append(f"{path} line {lineno}: cannot parse value of {key}: {exc}")
            parts = [value.strip("\"'")]
        fields[key] = " ".join(parts)
    if bad > 3:
        warnings.append(f"{path}: {bad - 3} more lines were not KEY=value")
    return fields


def _distro_from_os_release(fields: Mapping[str, str]) -> Distro | None:
    distro_id = fields.get("ID", "").strip().lower()
    if not distro_id:
        return None
    return Distro(
        id=distro_id,
        version_id=fields.get("VERSION_ID") or None,
        pretty_name=fields.get("PRETTY_NAME") or fields.get("NAME") or None,
        id_like=tuple(fields.get("ID_LIKE", "").lower().split()),
        version_codename=fields.get("VERSION_CODENAME") or None,
    )


def _from_release_line(data: bytes) -> Distro | None:
    text = _text(data).strip()
    line = text.splitlines()[0] if text else ""
    lowered = line.lower()
    distro_id = next((found for needle, found in _RELEASE_NAMES if needle in lowered), None)
    if distro_id is None:
        return None
    match = re.search(r"release\s+([0-9][0-9A-Za-z.]*)", line) or re.search(
        r"\b([0-9]+(?:\.[0-9]+)*)\b", line
    )
    version = match.group(1) if match else None
    if version and distro_id == "centos":
        version = version.split(".")[0]  # os-release on CentOS says VERSION_ID="7", not 7.9.2009
    codename = re.search(r"\(([^)]+)\)", line)
    return Distro(
        id=distro_id,
        version_id=version,
        pretty_name=line or None,
        version_codename=codename.group(1) if codename else None,
    )


def _from_lsb_release(data: bytes) -> Distro | None:
    fields = parse_os_release(data, "etc/lsb-release", [])
    distro_id = fields.get("DISTRIB_ID", "").strip().lower()
    if not distro_id:
        return None
    return Distro(
        id=distro_id,
        version_id=fields.get("DISTRIB_RELEASE") or None,
        pretty_name=fields.get("DISTRIB_DESCRIPTION") or None,
        version_codename=fields.get("DISTRIB_CODENAME") or None,
    )


def _from_alpine_release(data: bytes) -> Distro | None:
    version = _text(data).strip()
    if not re.fullmatch(r"[0-9][0-9A-Za-z._-]*", version):
        return None
    return Distro(id="alpine", version_id=version, pretty_name=f"Alpine Linux v{version}")


def _from_system_release_cpe(data: bytes) -> Distro | None:
    # cpe:/o:centos:linux:6:GA  or  cpe:2.3:o:amazon:amazon_linux:2
    parts = _text(data).strip().split(":")
    if len(parts) < 5 or parts[0] != "cpe":
        return None
    if parts[1] == "2.3":
        parts = parts[1:]
    vendor, product = parts[2].lower(), parts[3].lower()
    version = parts[4] if len(parts) > 4 and parts[4] not in ("", "*") else None
    known = {"centos": "centos", "redhat": "rhel", "fedoraproject": "fedora", "amazon": "amzn"}
    distro_id = known.get(vendor)
    if distro_id is None:
        return None
    return Distro(id=distro_id, version_id=version, pretty_name=f"{vendor} {product} {version}")


def _from_suse_release(data: bytes) -> Distro | None:
    lines = _text(data).strip().splitlines()
    if not lines:
        return None
    first = lines[0].lower()
    distro_id = "opensuse" if "opensuse" in first else "sles" if "suse" in first else None
    if distro_id is None:
        return None
    values = {}
    for line in lines[1:]:
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().upper()] = value.strip()
    version = values.get("VERSION")
    if version and values.get("PATCHLEVEL", "0") not in ("", "0") and "." not in version:
        version = f"{version}.{values['PATCHLEVEL']}"
    return Distro(id=distro_id, version_id=version, pretty_name=lines[0].strip())


def _from_debian_version(data: bytes) -> Distro | None:
    text = _text(data).strip()
    if not text:
        return None
    if re.fullmatch(r"[0-9]+(\.[0-9]+)*", text):
        # os-release says VERSION_ID="12" while debian_version says 12.5: keep the major number
        # so both sources give the same id, and the point release in the pretty name.
        return Distro(
            id="debian", version_id=text.split(".")[0], pretty_name=f"Debian GNU/Linux {text}"
        )
    codename = text.split("/")[0]
    if not re.fullmatch(r"[a-z]+", codename):
        return None
    return Distro(id="debian", version_codename=codename, pretty_name=f"Debian GNU/Linux {text}")


_FALLBACK_PARSERS: dict[str, Callable[[bytes], Distro | None]] = {
    "etc/lsb-release": _from_lsb_release,
    "etc/alpine-release": _from_alpine_release,
    **{path: _from_release_line for path in _RELEASE_LINE_PATHS},
    "etc/system-release-cpe": _from_system_release_cpe,
    "etc/SuSE-release": _from_suse_release,
    "etc/debian_version": _from_debian_version,
}


def detect_distro(files: Mapping[str, bytes]) -> CatalogResult:
    """Distro from the first source that names one; warnings for files that were unreadable."""
    result = CatalogResult()
    for path in OS_RELEASE_PATHS:
        if path in files:
            distro = _distro_from_os_release(parse_os_release(files[path], path, result.warnings))
            if distro is not None:
                result.distro = distro
                return result
            result.warnings.append(f"{path}: no ID= line, trying the other release files")
    for path in FALLBACK_PATHS:
        if path in files:
            distro = _FALLBACK_PARSERS[path](files[path])
            if distro is not None:
                result.distro = distro
                return result
            result.warnings.append(f"{path}: does not name a known distribution")
    return result


class OsReleaseCataloger:
    """Finds the image's distribution; returns no packages."""

    name = "os-release"
    version = "1"
    max_file_size = 1024 * 1024

    _paths = frozenset((*OS_RELEASE_PATHS, *FALLBACK_PATHS))
    path_prefixes = tuple(sorted(_paths))

    def wants(self, path: str) -> bool:
        return path in self._paths

    def catalog(self, files: Mapping[str, bytes]) -> CatalogResult:
        sized = {}
        warnings = []
        for path, data in files.items():
            if len(data) > self.max_file_size:
                warnings.append(f"{path}: {len(data)} bytes is too large for a release file")
            else:
                sized[path] = data
        result = guarded(
            self.name, "release files", partial(detect_distro, sized), CatalogResult(), warnings
        )
        result.warnings[:0] = warnings
        return result
