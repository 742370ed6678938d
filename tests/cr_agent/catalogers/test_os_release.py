"""Distro detection from os-release and the older release files."""

from __future__ import annotations

from cr_agent.catalogers.base import Distro
from cr_agent.catalogers.os_release import OsReleaseCataloger

DEBIAN_OS_RELEASE = b"""PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"""

UBUNTU_OS_RELEASE = b"""NAME="Ubuntu"
VERSION="22.04.3 LTS (Jammy Jellyfish)"
ID=ubuntu
ID_LIKE=debian
PRETTY_NAME="Ubuntu 22.04.3 LTS"
VERSION_ID="22.04"
VERSION_CODENAME=jammy
"""


def run(files: dict[str, bytes]):
    cataloger = OsReleaseCataloger()
    assert all(cataloger.wants(path) for path in files)
    return cataloger.catalog(files)


def test_os_release_fields_become_the_distro() -> None:
    result = run({"etc/os-release": DEBIAN_OS_RELEASE, "etc/debian_version": b"12.5\n"})
    assert result.distro == Distro(
        id="debian",
        version_id="12",
        pretty_name="Debian GNU/Linux 12 (bookworm)",
        id_like=(),
        version_codename="bookworm",
    )
    assert result.packages == [] and result.warnings == []


def test_usr_lib_os_release_is_used_when_etc_is_absent() -> None:
    result = run({"usr/lib/os-release": UBUNTU_OS_RELEASE, "etc/debian_version": b"bookworm/sid"})
    assert result.distro is not None
    assert (result.distro.id, result.distro.version_id, result.distro.id_like) == (
        "ubuntu",
        "22.04",
        ("debian",),
    )


def test_single_quotes_comments_and_escapes_are_read_like_a_shell() -> None:
    text = b'# comment\nID=\'sles\'\nVERSION_ID="15.5"\nPRETTY_NAME="SUSE \\"Linux\\""\n'
    result = run({"etc/os-release": text})
    assert result.distro == Distro(id="sles", version_id="15.5", pretty_name='SUSE "Linux"')


def test_fallback_files_when_there_is_no_os_release() -> None:
    cases = {
        "etc/alpine-release": (b"3.19.1\n", ("alpine", "3.19.1")),
        "etc/centos-release": (b"CentOS release 6.10 (Final)\n", ("centos", "6")),
        "etc/redhat-release": (
            b"Red Hat Enterprise Linux Server release 7.9 (Maipo)\n",
            ("rhel", "7.9"),
        ),
        "etc/fedora-release": (b"Fedora release 39 (Thirty Nine)\n", ("fedora", "39")),
        "etc/system-release": (b"Amazon Linux AMI release 2018.03\n", ("amzn", "2018.03")),
        "etc/oracle-release": (b"Oracle Linux Server release 7.9\n", ("ol", "7.9")),
        "etc/SuSE-release": (
            b"SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\nPATCHLEVEL = 4\n",
            ("sles", "11.4"),
        ),
        "etc/lsb-release": (
            b"DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=14.04\nDISTRIB_CODENAME=trusty\n",
            ("ubuntu", "14.04"),
        ),
        "etc/debian_version": (b"8.11\n", ("debian", "8")),
        "etc/system-release-cpe": (b"cpe:/o:centos:linux:6:GA\n", ("centos", "6")),
    }
    for path, (content, expected) in cases.items():
        result = run({path: content})
        assert result.distro is not None, path
        assert (result.distro.id, result.distro.version_id) == expected, path


def test_specific_release_file_beats_debian_version() -> None:
    # Ubuntu 14.04 has lsb-release and a debian_version saying "jessie/sid".
    result = run(
        {
            "etc/debian_version": b"jessie/sid\n",
            "etc/lsb-release": b"DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=14.04\n",
        }
    )
    assert result.distro is not None and result.distro.id == "ubuntu"


def test_garbled_os_release_warns_and_falls_back() -> None:
    result = run(
        {"etc/os-release": b"\x00\xff garbage\nnot a line\n", "etc/alpine-release": b"3.18.4"}
    )
    assert result.distro is not None and result.distro.id == "alpine"
    assert any("etc/os-release line 1" in w for w in result.warnings)
    assert any("no ID=" in w for w in result.warnings)


def test_unknown_release_file_gives_a_warning_and_no_distro() -> None:
    result = run({"etc/redhat-release": b"Something Else entirely\n"})
    assert result.distro is None
    assert result.warnings == ["etc/redhat-release: does not name a known distribution"]


def test_wants_only_release_files() -> None:
    cataloger = OsReleaseCataloger()
    assert cataloger.wants("etc/os-release")
    assert not cataloger.wants("etc/os-release.d/x")
    assert not cataloger.wants("/etc/os-release")
