"""apk installed database: fields, both paths, garbled input."""

from __future__ import annotations

from cr_agent.catalogers.apk import ApkCataloger
from cr_agent.catalogers.base import Package


def apk_entry(name: str, version: str, origin: str, license_: str, arch: str = "x86_64") -> str:
    # Field order as apk writes it, including file lines after the package fields.
    return (
        f"C:Q1abcdefghijklmnopqrstuvwxyz0123=\nP:{name}\nV:{version}\nA:{arch}\nS:12345\n"
        f"I:40960\nT:{name} description\nU:https://example.org/{name}\nL:{license_}\n"
        f"o:{origin}\nm:Natanael Copa <ncopa@alpinelinux.org>\nt:1700000000\n"
        "c:0123456789abcdef\nD:so:libc.musl-x86_64.so.1\np:so:libfoo.so.1=1\n"
        "F:usr/lib\nR:libfoo.so.1\na:0:0:755\nZ:Q1zzzzzzzzzzzzzzzzzzzzzzzzzzz=\n\n"
    )


def test_installed_database_packages() -> None:
    packages = [
        ("musl", "1.2.4_git20230717-r4", "musl", "MIT"),
        ("libcrypto3", "3.1.4-r5", "openssl", "Apache-2.0"),
        ("busybox-binsh", "1.36.1-r15", "busybox", "GPL-2.0-only"),
        ("scanelf", "1.3.7-r2", "pax-utils", "GPL-2.0-only AND MIT"),
    ]
    db = "".join(apk_entry(*p) for p in packages).encode()
    cataloger = ApkCataloger()
    assert cataloger.wants("lib/apk/db/installed")
    result = cataloger.catalog({"lib/apk/db/installed": db})
    assert result.warnings == []
    assert [(p.name, p.version, p.arch, p.source_name, p.licenses) for p in result.packages] == [
        (name, version, "x86_64", origin, (lic,)) for name, version, origin, lic in packages
    ]
    first = result.packages[0]
    assert first == Package(
        type="apk",
        name="musl",
        version="1.2.4_git20230717-r4",
        arch="x86_64",
        source_name="musl",
        source_version="1.2.4_git20230717-r4",
        licenses=("MIT",),
        database="lib/apk/db/installed",
        extra=first.extra,
    )
    assert ("maintainer", "Natanael Copa <ncopa@alpinelinux.org>") in first.extra
    assert first.full_version == "1.2.4_git20230717-r4"


def test_usr_lib_path_for_wolfi() -> None:
    db = apk_entry("wolfi-baselayout", "20230201-r7", "wolfi-baselayout", "MIT", "aarch64")
    cataloger = ApkCataloger()
    assert cataloger.wants("usr/lib/apk/db/installed")
    result = cataloger.catalog({"usr/lib/apk/db/installed": db.encode()})
    assert [(p.name, p.arch, p.database) for p in result.packages] == [
        ("wolfi-baselayout", "aarch64", "usr/lib/apk/db/installed")
    ]


def test_garbled_lines_and_entry_without_version_are_reported() -> None:
    db = (
        apk_entry("zlib", "1.3.1-r0", "zlib", "Zlib")
        + "P:broken\nA:x86_64\n\n"
        + "\x00\x01binary junk here\n"
        + apk_entry("ssl_client", "3.1.4-r5", "openssl", "x")
    )
    result = ApkCataloger().catalog({"lib/apk/db/installed": db.encode()})
    assert [p.name for p in result.packages] == ["zlib", "ssl_client"]
    assert any("no V: line" in w and "line 21" in w for w in result.warnings), result.warnings
    assert any("expected 'X:value'" in w and "line 24" in w for w in result.warnings)


def test_random_bytes_never_raise() -> None:
    import random

    rng = random.Random(7)
    data = bytes(rng.getrandbits(8) for _ in range(200_000))
    result = ApkCataloger().catalog({"lib/apk/db/installed": data})
    assert result.packages == []
    assert result.warnings and len(result.warnings) <= 13


def test_oversized_file_is_skipped_with_a_warning() -> None:
    cataloger = ApkCataloger()
    cataloger.max_file_size = 100
    result = cataloger.catalog({"lib/apk/db/installed": b"P:x\nV:1\n" * 50})
    assert result.packages == []
    assert result.warnings == [
        "lib/apk/db/installed: 400 bytes exceeds the 100-byte limit; skipped"
    ]
