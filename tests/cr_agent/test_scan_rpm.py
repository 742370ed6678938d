"""rpm images: the three rpmdb formats the CATALOG fixtures hold (made by Debian's rpm and
db5.3_load, see tests/fixtures/rpmdb/make_fixtures.py), scanned through the real registry."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cr_agent.sbom import purl_string
from cr_agent.scan import scan_reference
from tests.support.images import Layer, Symlink, build_image, os_release, push
from tests.support.registry_client import registry_client

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rpmdb"
FORMATS = {
    "sqlite": ("sqlite/rpmdb.sqlite", "rpmdb.sqlite"),
    "bdb": ("bdb/Packages", "Packages"),
    "bdb-8k": ("bdb-8k/Packages", "Packages"),
}
#: the real SUSE NDB database the issue names (shared reference data, not in this repository)
SUSE_NDB = Path(__file__).resolve().parents[3] / "shared" / "reference" / "rpmdb" / "sle15-bci"


def expected_packages() -> set[tuple[str, str, int | None, str, str]]:
    rows = set()
    for line in (FIXTURES / "expected.tsv").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, epoch, version, release, arch, _srpm, _lic = line.split("\t")
        rows.add((name, version, None if epoch == "(none)" else int(epoch), release, arch))
    return rows


def _fixture(kind: str) -> bytes:
    path = FIXTURES / FORMATS[kind][0]
    if not path.exists():
        pytest.skip(f"rpmdb fixture {path.relative_to(FIXTURES)} not present")
    return path.read_bytes()


@pytest.mark.parametrize("kind", list(FORMATS))
async def test_rpm_database_formats(plain_registry, unique_repo, kind):
    db = _fixture(kind)
    directory = "usr/lib/sysimage/rpm" if kind == "sqlite" else "var/lib/rpm"
    image = build_image(
        [
            Layer(
                {"etc/os-release": os_release("fedora", "40", id_like="rhel")},
                created_by="ADD base /",
            ),
            Layer(
                {f"{directory}/{FORMATS[kind][1]}": db},
                created_by="RUN dnf install -y hello-tool widget",
            ),
        ]
    )
    await asyncio.to_thread(push, plain_registry.url, unique_repo, image)
    async with registry_client(plain_registry.url) as client:
        result = await scan_reference(client, unique_repo, "latest")
    found = {
        (r.package.name, r.package.version, r.package.epoch, r.package.release, r.package.arch)
        for r in result.packages
    }
    assert found == expected_packages()
    assert {r.layer_index for r in result.packages} == {1}
    assert not [w for w in result.warnings if w.startswith("rpm")], result.warnings
    hello = next(r.package for r in result.packages if r.package.name == "hello-tool")
    assert purl_string(hello, result.distro) == (
        "pkg:rpm/fedora/hello-tool@1.2.3-4.fx1?arch=x86_64&distro=fedora-40&epoch=2"
        "&upstream=hello-tool-1.2.3-4.fx1.src.rpm"
    )


async def test_suse_ndb_database(plain_registry, unique_repo):
    db_path = SUSE_NDB / "Packages.db"
    if not db_path.exists():
        pytest.skip(f"needs ../shared beside the clone: {db_path} (reference rpmdb) is absent")
    data = db_path.read_bytes()
    expected = set()
    for line in (SUSE_NDB / "expected.tsv").read_text().splitlines():
        if line.strip():
            name, version, release, arch, srpm = line.split("\t")
            # expected.tsv also names a Fedora libgcc that this database does not hold (its
            # source rpm occurs nowhere in the file); the list is of what the file holds
            if srpm.encode() in data:
                expected.add((name, version, release, arch))
    image = build_image(
        [
            Layer(
                {"etc/os-release": os_release("sles", "15.3", id_like="suse")},
                created_by="ADD sle15 /",
            ),
            Layer(
                {"usr/lib/sysimage/rpm/Packages.db": db_path.read_bytes()},
                created_by="RUN zypper install -y glibc",
            ),
        ]
    )
    await asyncio.to_thread(push, plain_registry.url, unique_repo, image)
    async with registry_client(plain_registry.url) as client:
        result = await scan_reference(client, unique_repo, "latest")
    found = {
        (r.package.name, r.package.version, r.package.release, r.package.arch)
        for r in result.packages
    }
    assert found == expected
    assert {r.layer_index for r in result.packages} == {1}
    glibc = next(r.package for r in result.packages if r.package.name == "glibc")
    assert purl_string(glibc, result.distro) == (
        "pkg:rpm/sles/glibc@2.31-9.3.2?arch=x86_64&distro=sles-15.3&upstream=glibc-2.31-9.3.2.src.rpm"
    )


async def test_rpmdb_through_var_lib_rpm_symlink(plain_registry, unique_repo):
    # Fedora 36+: /var/lib/rpm -> ../../usr/lib/sysimage/rpm
    image = build_image(
        [
            Layer(
                {
                    "var/lib/rpm": Symlink("../../usr/lib/sysimage/rpm"),
                    "usr/lib/sysimage/rpm/rpmdb.sqlite": _fixture("sqlite"),
                }
            ),
        ]
    )
    await asyncio.to_thread(push, plain_registry.url, unique_repo, image)
    async with registry_client(plain_registry.url) as client:
        result = await scan_reference(client, unique_repo, "latest")
    names = sorted(r.package.name for r in result.packages)
    # one database, reachable under two names: each package once
    assert names == sorted(p[0] for p in expected_packages())


async def test_corrupt_rpmdb_page_is_a_reader_warning(plain_registry, unique_repo):
    db = bytearray(_fixture("bdb"))
    page = 4096
    for offset in range(page * 2, page * 4):  # wreck two pages after the metadata page
        db[offset] = 0xA5
    image = build_image([Layer({"var/lib/rpm/Packages": bytes(db)})])
    await asyncio.to_thread(push, plain_registry.url, unique_repo, image)
    async with registry_client(plain_registry.url) as client:
        result = await asyncio.wait_for(scan_reference(client, unique_repo, "latest"), 30)
    assert any(w.startswith("rpm: ") for w in result.warnings), result.warnings
    assert {r.package.name for r in result.packages} <= {p[0] for p in expected_packages()}


async def test_azure_linux_rpmmanifest(plain_registry, unique_repo):
    # distroless Azure Linux: no rpmdb, rpm -qa output written at build time
    rows = [
        ("filesystem", "1.1", "20.azl3", "(none)", "x86_64"),
        ("glibc", "2.38", "8.azl3", "(none)", "x86_64"),
        ("openssl-libs", "3.3.2", "1.azl3", "1", "x86_64"),
    ]
    lines = [
        f"{n}\t{v}-{r}\t1700000000\t1690000000\tMicrosoft Corporation\t{e}\t1234\t{a}\t"
        f"{0 if e == '(none)' else e}\t{n}-{v}-{r}.src.rpm"
        for n, v, r, e, a in rows
    ]
    image = build_image(
        [
            Layer(
                {
                    "etc/os-release": os_release("azurelinux", "3.0"),
                    "var/lib/rpmmanifest/container-manifest-2": (
                        "\n".join(lines[:2]) + "\n"
                    ).encode(),
                },
                created_by="ADD distroless-base /",
            ),
            Layer(
                {"var/lib/rpmmanifest/container-manifest-2": ("\n".join(lines) + "\n").encode()},
                created_by="RUN tdnf install openssl-libs",
            ),
        ]
    )
    await asyncio.to_thread(push, plain_registry.url, unique_repo, image)
    async with registry_client(plain_registry.url) as client:
        result = await scan_reference(client, unique_repo, "latest")
    found = {
        (r.package.name, r.package.version, r.package.release, r.package.epoch, r.layer_index)
        for r in result.packages
    }
    assert found == {
        ("filesystem", "1.1", "20.azl3", None, 0),
        ("glibc", "2.38", "8.azl3", None, 0),
        ("openssl-libs", "3.3.2", "1.azl3", 1, 1),
    }
