"""Which distro release an advisory speaks about, and which release an image runs.

Both sides are reduced to a :class:`Stream` (family, release): OSV ecosystem names
("Debian:12", "Alpine:v3.20", "Red Hat:enterprise_linux:9::appstream", "SUSE:Linux
Enterprise Server 15 SP5"), Alpine secdb's ``distroversion``, the Debian tracker's codenames,
and an image's os-release (``ID`` + ``VERSION_ID``) all land on the same values, so matching
is a dictionary look-up.
"""

from __future__ import annotations

import re

from control_plane.advisories.records import Stream

# Debian's release codenames as the security tracker writes them.
DEBIAN_CODENAMES = {
    "wheezy": "7",
    "jessie": "8",
    "stretch": "9",
    "buster": "10",
    "bullseye": "11",
    "bookworm": "12",
    "trixie": "13",
    "forky": "14",
    "duke": "15",
}

# Version order each family's package manager uses.
SCHEMES = {
    "debian": "deb",
    "ubuntu": "deb",
    "ubuntu-pro": "deb",
    "alpine": "apk",
    "wolfi": "apk",
    "chainguard": "apk",
    "rhel": "rpm",
    "rocky": "rpm",
    "almalinux": "rpm",
    "sles": "rpm",
    "sle-micro": "rpm",
    "opensuse-leap": "rpm",
    "opensuse-tumbleweed": "rpm",
}

_ALPINE_RELEASE = re.compile(r"v?(\d+)\.(\d+)(?:[._].*)?")
_MAJOR = re.compile(r"(\d+)(?:\..*)?")
_UBUNTU = re.compile(r"(\d+\.\d+)")
_REDHAT_EL = re.compile(r"enterprise_linux:(\d+)(?::.*)?")
_SUSE_SP = re.compile(r"Linux Enterprise (.+?) (\d+)(?: SP(\d+))?")
_SUSE_MICRO = re.compile(r"Linux Enterprise Micro (\d+(?:\.\d+)?)")
_LEAP = re.compile(r"Leap (?:Micro )?(\d+\.\d+)")


def scheme_for(stream: Stream) -> str | None:
    """``"deb"``, ``"rpm"`` or ``"apk"`` for a stream's family; None when unknown."""
    return SCHEMES.get(stream.family)


def alpine_release(text: str) -> str | None:
    """``v3.20``, ``3.20``, ``3.20.3`` -> ``3.20``; None if not of that shape."""
    match = _ALPINE_RELEASE.fullmatch(text.strip())
    return f"{match.group(1)}.{match.group(2)}" if match else None


def _suse(rest: str) -> Stream | None:
    micro = _SUSE_MICRO.fullmatch(rest)
    if micro:
        return Stream("sle-micro", micro.group(1))
    match = _SUSE_SP.fullmatch(rest)
    if match is None:
        return None
    major, service_pack = match.group(2), match.group(3)
    return Stream("sles", f"{major}.{service_pack}" if service_pack else major)


def stream_from_osv(ecosystem: str) -> Stream | None:
    """The stream an OSV ``affected[].package.ecosystem`` names; None if not a distro we match."""
    name, _, rest = ecosystem.partition(":")
    if name == "Debian":
        match = _MAJOR.fullmatch(rest)
        return Stream("debian", match.group(1)) if match else None
    if name == "Alpine":
        release = alpine_release(rest)
        return Stream("alpine", release) if release else None
    if name == "Ubuntu":
        # "Ubuntu:22.04:LTS", "Ubuntu:24.10", "Ubuntu:Pro:18.04:LTS" (ESM builds, not in images)
        family = "ubuntu"
        if rest.startswith("Pro:"):
            family, rest = "ubuntu-pro", rest[len("Pro:") :]
        match = _UBUNTU.match(rest)
        return Stream(family, match.group(1)) if match else None
    if name == "Red Hat":
        # Only the main RHEL streams: EUS/AUS/E4S and layered products are not what an
        # image's os-release can tell apart.
        match = _REDHAT_EL.fullmatch(rest)
        return Stream("rhel", match.group(1)) if match else None
    if name in ("Rocky Linux", "AlmaLinux"):
        match = _MAJOR.fullmatch(rest)
        family = "rocky" if name == "Rocky Linux" else "almalinux"
        return Stream(family, match.group(1)) if match else None
    if name == "SUSE":
        return _suse(rest)
    if name == "openSUSE":
        if rest == "Tumbleweed":
            return Stream("opensuse-tumbleweed", "")
        match = _LEAP.fullmatch(rest)
        return Stream("opensuse-leap", match.group(1)) if match else None
    if name in ("Wolfi", "Chainguard") and not rest:
        return Stream(name.lower(), "")
    return None


def stream_from_debian_codename(codename: str) -> Stream | None:
    release = DEBIAN_CODENAMES.get(codename)
    return Stream("debian", release) if release else None


def stream_from_os_release(distro_id: str, version_id: str | None) -> Stream | None:
    """The stream an image's os-release (``ID``, ``VERSION_ID``) belongs to; None if unknown."""
    distro_id = distro_id.strip().lower()
    version = (version_id or "").strip()
    if distro_id in ("wolfi", "chainguard", "opensuse-tumbleweed"):
        return Stream(distro_id, "")
    if not version:
        return None  # Debian testing/sid, Alpine edge without a number: no release to match
    if distro_id == "alpine":
        release = alpine_release(version)
        return Stream("alpine", release) if release else None
    if distro_id == "ubuntu":
        match = _UBUNTU.match(version)
        return Stream("ubuntu", match.group(1)) if match else None
    if distro_id in ("debian", "rhel", "rocky", "almalinux"):
        match = _MAJOR.fullmatch(version)
        return Stream(distro_id, match.group(1)) if match else None
    if distro_id in ("sles", "sled", "sle-micro", "opensuse-leap"):
        family = "sles" if distro_id == "sled" else distro_id
        return Stream(family, version)
    return None
