"""dpkg status and distroless status.d, licences from DEP-5 copyright, bad input."""

from __future__ import annotations

import random
import time

from cr_agent.catalogers.base import Package
from cr_agent.catalogers.dpkg import DpkgCataloger


def paragraph(
    name: str,
    version: str,
    *,
    arch: str = "amd64",
    status: str | None = "install ok installed",
    source: str | None = None,
) -> str:
    lines = [f"Package: {name}"]
    if status is not None:
        lines.append(f"Status: {status}")
    lines += [
        "Priority: optional",
        "Section: libs",
        "Installed-Size: 1234",
        "Maintainer: Debian Maintainers <debian@example.org>",
        f"Architecture: {arch}",
        "Multi-Arch: same",
    ]
    if source is not None:
        lines.append(f"Source: {source}")
    lines += [
        f"Version: {version}",
        "Depends: libc6 (>= 2.34)",
        f"Description: the {name} package",
        " A longer description that runs",
        " .",
        " over several continuation lines.",
    ]
    if status is not None and status.endswith("config-files"):
        lines.append("Conffiles:\n /etc/thing.conf 0123456789abcdef0123456789abcdef")
    return "\n".join(lines) + "\n"


STATUS_PACKAGES = [
    # name, version, arch, source field, expected (epoch, version, source name, source version)
    (
        "base-files",
        "12.4+deb12u5",
        "amd64",
        None,
        (None, "12.4+deb12u5", "base-files", "12.4+deb12u5"),
    ),
    ("libgcc-s1", "12.2.0-14", "amd64", "gcc-12", (None, "12.2.0-14", "gcc-12", "12.2.0-14")),
    (
        "login",
        "1:4.13+dfsg1-1+b1",
        "amd64",
        "shadow (1:4.13+dfsg1-1)",
        (1, "4.13+dfsg1-1+b1", "shadow", "1:4.13+dfsg1-1"),
    ),
    (
        "tzdata",
        "2024a-0+deb12u1",
        "all",
        None,
        (None, "2024a-0+deb12u1", "tzdata", "2024a-0+deb12u1"),
    ),
    (
        "libc6",
        "2.36-9+deb12u4",
        "i386",
        "glibc",
        (None, "2.36-9+deb12u4", "glibc", "2.36-9+deb12u4"),
    ),
]


def status_file() -> bytes:
    parts = [paragraph(n, v, arch=a, source=s) for n, v, a, s, _ in STATUS_PACKAGES]
    # Not installed: removed with config left, half-installed, marked for purge.
    parts.insert(1, paragraph("oldpkg", "1.0-1", status="deinstall ok config-files"))
    parts.insert(3, paragraph("halfpkg", "2.0-1", status="install reinstreq half-installed"))
    parts.append(paragraph("purged", "3.0", status="purge ok not-installed"))
    parts.append(paragraph("held", "4.0-2", status="hold ok installed"))
    return "\n".join(parts).encode()


DEP5 = b"""Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: shadow
Source: https://github.com/shadow-maint/shadow

Files: *
Copyright: 1989 - 1994, Julianne Frances Haugh
License: BSD-3-clause

Files: lib/tcbfuncs.c
Copyright: 2001, Rafal Wojtczuk
License: GPL-2+

Files: debian/*
Copyright: 1999-2001, Ben Collins
License: BSD-3-clause

License: BSD-3-clause
 Redistribution and use in source and binary forms, with or without
 modification, are permitted provided that the following conditions
 .
 are met.

License: GPL-2+
 This program is free software.
"""

FREE_FORM = b"""This is the Debian prepackaged version of tzdata.
It is in the public domain.
"""


def test_status_file_installed_packages_only() -> None:
    cataloger = DpkgCataloger()
    assert cataloger.wants("var/lib/dpkg/status")
    result = cataloger.catalog({"var/lib/dpkg/status": status_file()})
    assert result.warnings == []
    got = [
        (p.name, p.arch, (p.epoch, p.version, p.source_name, p.source_version))
        for p in result.packages
    ]
    expected = [(n, a, e) for n, _, a, _, e in STATUS_PACKAGES] + [
        ("held", "amd64", (None, "4.0-2", "held", "4.0-2"))
    ]
    assert got == expected
    login = next(p for p in result.packages if p.name == "login")
    assert login.full_version == "1:4.13+dfsg1-1+b1"
    assert login.database == "var/lib/dpkg/status"
    assert ("maintainer", "Debian Maintainers <debian@example.org>") in login.extra
    assert ("installed_size", "1234") in login.extra


def test_dep5_copyright_gives_licences_and_free_form_gives_none() -> None:
    cataloger = DpkgCataloger()
    files = {
        "var/lib/dpkg/status": status_file(),
        "usr/share/doc/login/copyright": DEP5,
        "usr/share/doc/tzdata/copyright": FREE_FORM,
    }
    assert all(cataloger.wants(path) for path in files)
    assert not cataloger.wants("usr/share/doc/login/changelog.gz")
    assert not cataloger.wants("usr/share/doc/login/examples/copyright")
    result = cataloger.catalog(files)
    by_name = {p.name: p for p in result.packages}
    assert by_name["login"].licenses == ("BSD-3-clause", "GPL-2+")
    assert by_name["tzdata"].licenses == ()
    assert result.warnings == []


def test_distroless_status_d_without_status_field() -> None:
    cataloger = DpkgCataloger()
    files = {
        "var/lib/dpkg/status.d/base-files": paragraph(
            "base-files", "12.4+deb12u5", status=None
        ).encode(),
        "var/lib/dpkg/status.d/libssl3": (
            paragraph("libssl3", "3.0.11-1~deb12u2", status=None, source="openssl")
        ).encode(),
        # Older distroless put several paragraphs into one file.
        "var/lib/dpkg/status.d/tzdata": (
            paragraph("tzdata", "2024a-0+deb12u1", arch="all", status=None)
            + "\n"
            + paragraph("netbase", "6.4", arch="all", status=None)
        ).encode(),
        "var/lib/dpkg/status.d/libssl3.md5sums": b"d41d8cd98f00b204e9800998ecf8427e  usr/lib/x\n",
    }
    assert not cataloger.wants("var/lib/dpkg/status.d/libssl3.md5sums")
    result = cataloger.catalog({k: v for k, v in files.items() if cataloger.wants(k)})
    assert result.warnings == []
    assert sorted((p.name, p.version, p.source_name, p.database) for p in result.packages) == [
        ("base-files", "12.4+deb12u5", "base-files", "var/lib/dpkg/status.d/base-files"),
        ("libssl3", "3.0.11-1~deb12u2", "openssl", "var/lib/dpkg/status.d/libssl3"),
        ("netbase", "6.4", "netbase", "var/lib/dpkg/status.d/tzdata"),
        ("tzdata", "2024a-0+deb12u1", "tzdata", "var/lib/dpkg/status.d/tzdata"),
    ]


def test_garbled_status_warns_with_line_numbers_and_keeps_good_paragraphs() -> None:
    good = paragraph("zlib1g", "1:1.2.13.dfsg-1")
    garbled = (
        good
        + "\nthis line is not a field\n\x00\x01\x02\xff\xfe binary\n"
        + "Package: nover\nStatus: install ok installed\n\n"
        + "Package: badsrc\nStatus: install ok installed\nVersion: 1\nSource: (weird\n\n"
        + paragraph("bash", "5.2.15-2+b2")
    ).encode("latin-1")
    result = DpkgCataloger().catalog({"var/lib/dpkg/status": garbled})
    assert [p.name for p in result.packages] == ["zlib1g", "badsrc", "bash"]
    text = "\n".join(result.warnings)
    assert "var/lib/dpkg/status: not valid UTF-8" in text
    assert "var/lib/dpkg/status line 16: expected 'Field: value'" in text
    assert "var/lib/dpkg/status line 18: paragraph has no Version field" in text
    assert "var/lib/dpkg/status line 21: cannot read Source '(weird'" in text


def test_duplicate_package_is_reported() -> None:
    data = (paragraph("bash", "5.2-1") + "\n" + paragraph("bash", "5.2-2")).encode()
    result = DpkgCataloger().catalog({"var/lib/dpkg/status": data})
    assert [p.full_version for p in result.packages] == ["5.2-1"]
    assert result.warnings == [
        "var/lib/dpkg/status line 16: bash (amd64) listed twice; kept the first"
    ]


def test_random_bytes_and_large_junk_never_raise_or_hang() -> None:
    rng = random.Random(1234)
    junk = bytes(rng.getrandbits(8) for _ in range(300_000))
    start = time.monotonic()
    result = DpkgCataloger().catalog({"var/lib/dpkg/status": junk * 20})  # 6 MB
    assert time.monotonic() - start < 20
    assert result.packages == []
    assert result.warnings and len(result.warnings) <= 14


def test_oversized_status_is_skipped() -> None:
    cataloger = DpkgCataloger()
    cataloger.max_file_size = 1000
    data = status_file()
    result = cataloger.catalog({"var/lib/dpkg/status": data})
    assert result.packages == []
    assert result.warnings == [
        f"var/lib/dpkg/status: {len(data)} bytes exceeds the 1000-byte limit; skipped"
    ]


def test_package_values_are_complete() -> None:
    result = DpkgCataloger().catalog(
        {
            "var/lib/dpkg/status": paragraph(
                "libgcc-s1", "12.2.0-14", source="gcc-12 (12.2.0-14)"
            ).encode()
        }
    )
    assert result.packages == [
        Package(
            type="deb",
            name="libgcc-s1",
            version="12.2.0-14",
            arch="amd64",
            source_name="gcc-12",
            source_version="12.2.0-14",
            database="var/lib/dpkg/status",
            extra=(
                ("maintainer", "Debian Maintainers <debian@example.org>"),
                ("installed_size", "1234"),
                ("multi_arch", "same"),
            ),
        )
    ]


def test_huge_multi_line_field_is_read_in_linear_time() -> None:
    data = paragraph("big", "1.0").encode() + b"Conffiles:\n" + b" /etc/x 0123\n" * 1_500_000
    start = time.monotonic()
    result = DpkgCataloger().catalog({"var/lib/dpkg/status": data})
    assert time.monotonic() - start < 10
    assert [p.name for p in result.packages] == ["big"]


def test_many_bad_paragraphs_keep_ten_warnings_and_a_count() -> None:
    result = DpkgCataloger().catalog({"var/lib/dpkg/status": b"X-Junk: y\n\n" * 400_000})
    assert result.packages == []
    assert len(result.warnings) == 11
    assert result.warnings[0] == (
        "var/lib/dpkg/status line 1: paragraph has no Package field; skipped"
    )
    assert result.warnings[-1] == "var/lib/dpkg/status: 399990 more warnings not shown"
