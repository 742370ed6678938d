"""Advisory ecosystems and image os-release land on the same streams."""

from __future__ import annotations

import pytest

from control_plane.advisories.ecosystems import (
    scheme_for,
    stream_from_debian_codename,
    stream_from_os_release,
    stream_from_osv,
)
from control_plane.advisories.records import Stream


@pytest.mark.parametrize(
    ("ecosystem", "stream"),
    [
        ("Debian:12", Stream("debian", "12")),
        ("Debian:11", Stream("debian", "11")),
        ("Alpine:v3.20", Stream("alpine", "3.20")),
        ("Ubuntu:22.04:LTS", Stream("ubuntu", "22.04")),
        ("Ubuntu:24.10", Stream("ubuntu", "24.10")),
        ("Ubuntu:Pro:18.04:LTS", Stream("ubuntu-pro", "18.04")),
        ("Red Hat:enterprise_linux:9::appstream", Stream("rhel", "9")),
        ("Red Hat:enterprise_linux:8::baseos", Stream("rhel", "8")),
        ("Rocky Linux:9", Stream("rocky", "9")),
        ("AlmaLinux:8", Stream("almalinux", "8")),
        ("SUSE:Linux Enterprise Server 15 SP5", Stream("sles", "15.5")),
        ("SUSE:Linux Enterprise Module for Basesystem 15 SP6", Stream("sles", "15.6")),
        ("SUSE:Linux Enterprise Server 12", Stream("sles", "12")),
        ("SUSE:Linux Enterprise Micro 5.5", Stream("sle-micro", "5.5")),
        ("openSUSE:Leap 15.5", Stream("opensuse-leap", "15.5")),
        ("openSUSE:Tumbleweed", Stream("opensuse-tumbleweed", "")),
        ("Wolfi", Stream("wolfi", "")),
        ("Chainguard", Stream("chainguard", "")),
    ],
)
def test_osv_ecosystems(ecosystem: str, stream: Stream) -> None:
    assert stream_from_osv(ecosystem) == stream
    assert scheme_for(stream) is not None


@pytest.mark.parametrize(
    "ecosystem",
    ["PyPI", "npm", "Debian", "Alpine:edge", "Red Hat:rhel_eus:9.2::baseos", "FooLinux:1", ""],
)
def test_ecosystems_we_do_not_match(ecosystem: str) -> None:
    assert stream_from_osv(ecosystem) is None


@pytest.mark.parametrize(
    ("distro_id", "version_id", "stream"),
    [
        ("debian", "12", Stream("debian", "12")),
        ("alpine", "3.20.3", Stream("alpine", "3.20")),
        ("ubuntu", "22.04", Stream("ubuntu", "22.04")),
        ("rhel", "9.4", Stream("rhel", "9")),
        ("rocky", "9.3", Stream("rocky", "9")),
        ("almalinux", "8.10", Stream("almalinux", "8")),
        ("sles", "15.5", Stream("sles", "15.5")),
        ("opensuse-leap", "15.6", Stream("opensuse-leap", "15.6")),
        ("opensuse-tumbleweed", "20240501", Stream("opensuse-tumbleweed", "")),
        ("wolfi", "20230201", Stream("wolfi", "")),
        ("chainguard", None, Stream("chainguard", "")),
        ("debian", None, None),  # testing / sid
        ("fedora", "40", None),
        ("centos", "7", None),
    ],
)
def test_os_release_streams(distro_id: str, version_id: str | None, stream: Stream | None) -> None:
    assert stream_from_os_release(distro_id, version_id) == stream


def test_debian_codenames() -> None:
    assert stream_from_debian_codename("bookworm") == Stream("debian", "12")
    assert stream_from_debian_codename("sid") is None
