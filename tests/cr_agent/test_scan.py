"""scan_image end to end: images built in code, pushed to Debian's docker-registry, scanned.

Each test puts known packages in known layers and checks the exact package list and the layer
that introduced each package.
"""

from __future__ import annotations

import asyncio
import gzip
import os

import pytest

from cr_agent.catalogers import default_catalogers
from cr_agent.layer_cache import LayerCache
from cr_agent.registry import DigestMismatch
from cr_agent.scan import ScanLimits, ScanResult, scan_reference
from tests.cr_agent.registry.tamper_proxy import TamperProxy
from tests.support.images import (
    OPAQUE,
    WHITEOUT,
    ApkPackage,
    DebPackage,
    EmptyStep,
    Layer,
    Symlink,
    apk_installed,
    build_image,
    build_index,
    dpkg_status,
    os_release,
    push,
    raw_tar,
    sha256_digest,
)
from tests.support.registry_client import registry_client

DEBIAN_RELEASE = {
    "usr/lib/os-release": os_release("debian", "12", codename="bookworm"),
    "etc/os-release": Symlink("../usr/lib/os-release"),
}


def packages(result: ScanResult) -> set[tuple[str, str, str, int]]:
    """(type, name, full version, introducing layer index) for every package found."""
    return {
        (r.package.type, r.package.name, r.package.full_version, r.layer_index)
        for r in result.packages
    }


async def _scan(registry, repo, image, *, tag="v1", **kw) -> ScanResult:
    await asyncio.to_thread(push, registry.url, repo, image, tag=tag)
    async with registry_client(registry.url) as client:
        return await scan_reference(client, repo, tag, **kw)


async def test_debian_like_image_with_upgrade_and_removal(plain_registry, unique_repo):
    a = DebPackage("base-files", "12.4+deb12u5")
    b_old = DebPackage("libc6", "2.36-9+deb12u3", source="glibc")
    c = DebPackage("curl", "7.88.1-10+deb12u5")
    d = DebPackage("libssl3", "3.0.11-1~deb12u2", source="openssl")
    e = DebPackage("tzdata", "2024a-0+deb12u1", arch="all")
    b_new = DebPackage("libc6", "2.36-9+deb12u7", source="glibc")
    epoch = DebPackage("libgmp10", "2:6.2.1+dfsg1-1.1", source="gmp (2:6.2.1+dfsg1-1.1)")
    image = build_image(
        [
            Layer(
                {**DEBIAN_RELEASE, "var/lib/dpkg/status": dpkg_status([a, b_old, c])},
                created_by="/bin/sh -c #(nop) ADD file:base in /",
            ),
            EmptyStep('/bin/sh -c #(nop)  CMD ["bash"]'),
            Layer(
                {"var/lib/dpkg/status": dpkg_status([a, b_old, c, d, e, epoch])},
                created_by="RUN apt-get install -y libssl3 tzdata libgmp10",
            ),
            EmptyStep("ENV LANG=C.UTF-8"),
            Layer(
                {"var/lib/dpkg/status": dpkg_status([a, b_new, d, e, epoch])},
                created_by="RUN apt-get purge -y curl && apt-get upgrade -y",
            ),
        ]
    )
    result = await _scan(plain_registry, unique_repo, image)
    assert packages(result) == {
        ("deb", "base-files", "12.4+deb12u5", 0),
        ("deb", "libssl3", "3.0.11-1~deb12u2", 1),
        ("deb", "tzdata", "2024a-0+deb12u1", 1),
        ("deb", "libgmp10", "2:6.2.1+dfsg1-1.1", 1),
        ("deb", "libc6", "2.36-9+deb12u7", 2),
    }
    assert result.distro is not None and (result.distro.id, result.distro.version_id) == (
        "debian",
        "12",
    )
    assert [layer.created_by for layer in result.layers] == [
        "/bin/sh -c #(nop) ADD file:base in /",
        "RUN apt-get install -y libssl3 tzdata libgmp10",
        "RUN apt-get purge -y curl && apt-get upgrade -y",
    ]
    assert [layer.diff_id for layer in result.layers] == image.diff_ids
    by_name = {r.package.name: r for r in result.packages}
    assert by_name["libc6"].layer_diff_id == image.diff_ids[2]
    assert by_name["libssl3"].package.source_name == "openssl"
    assert result.digest == image.digest
    assert not result.warnings


async def test_whiteout_removes_the_database(plain_registry, unique_repo):
    image = build_image(
        [
            Layer(
                {
                    **DEBIAN_RELEASE,
                    "var/lib/dpkg/status": dpkg_status([DebPackage("bash", "5.2.15-2+b2")]),
                }
            ),
            Layer({"var/lib/dpkg/status": WHITEOUT}, compression="none"),
        ]
    )
    result = await _scan(plain_registry, unique_repo, image)
    assert packages(result) == set()


async def test_distroless_status_d_with_whiteout(plain_registry, unique_repo):
    image = build_image(
        [
            Layer(
                {
                    "etc/os-release": os_release("debian", "12", pretty_name="Distroless"),
                    "var/lib/dpkg/status.d/base-files": dpkg_status(
                        [DebPackage("base-files", "12.4")]
                    ).replace(b"Status: install ok installed\n", b""),
                    "var/lib/dpkg/status.d/libc6": dpkg_status([DebPackage("libc6", "2.36-9")]),
                    "var/lib/dpkg/status.d/libc6.md5sums": b"d41d8cd98f00b204e9800998ecf8427e  lib/x\n",
                },
                created_by="bazel build //base",
            ),
            Layer(
                {"var/lib/dpkg/status.d/libssl3": dpkg_status([DebPackage("libssl3", "3.0.11-1")])},
                created_by="bazel build //ssl",
            ),
            Layer({"var/lib/dpkg/status.d/libc6": WHITEOUT}, created_by="bazel build //static"),
        ]
    )
    result = await _scan(plain_registry, unique_repo, image)
    assert packages(result) == {
        ("deb", "base-files", "12.4", 0),
        ("deb", "libssl3", "3.0.11-1", 1),
    }


async def test_opaque_directory_hides_lower_contents(plain_registry, unique_repo):
    image = build_image(
        [
            Layer(
                {
                    "var/lib/dpkg/status.d/a": dpkg_status([DebPackage("pkg-a", "1.0")]),
                    "var/lib/dpkg/status.d/b": dpkg_status([DebPackage("pkg-b", "1.0")]),
                }
            ),
            Layer(
                {
                    "var/lib/dpkg/status.d": OPAQUE,
                    "var/lib/dpkg/status.d/c": dpkg_status([DebPackage("pkg-c", "2.0")]),
                }
            ),
        ]
    )
    result = await _scan(plain_registry, unique_repo, image)
    assert packages(result) == {("deb", "pkg-c", "2.0", 1)}


async def test_alpine_like_with_zstd_and_uncompressed_layers(plain_registry, unique_repo):
    base = [ApkPackage("musl", "1.2.4-r2", origin="musl"), ApkPackage("busybox", "1.36.1-r15")]
    more = [*base, ApkPackage("libcrypto3", "3.1.4-r5", origin="openssl", license="Apache-2.0")]
    image = build_image(
        [
            Layer(
                {
                    "etc/alpine-release": b"3.19.1\n",
                    "etc/os-release": os_release("alpine", "3.19.1"),
                    "lib/apk/db/installed": apk_installed(base),
                },
                compression="zstd",
                created_by="ADD alpine-minirootfs.tar.gz /",
            ),
            Layer(
                {"lib/apk/db/installed": apk_installed(more)},
                compression="none",
                created_by="RUN apk add libcrypto3",
            ),
        ]
    )
    result = await _scan(plain_registry, unique_repo, image)
    assert packages(result) == {
        ("apk", "musl", "1.2.4-r2", 0),
        ("apk", "busybox", "1.36.1-r15", 0),
        ("apk", "libcrypto3", "3.1.4-r5", 1),
    }
    assert result.distro is not None and result.distro.id == "alpine"
    crypto = next(r for r in result.packages if r.package.name == "libcrypto3")
    assert crypto.package.source_name == "openssl" and crypto.package.arch == "x86_64"


async def test_docker_schema2_with_buildkit_zstd_layer_type(plain_registry, unique_repo):
    image = build_image(
        [
            Layer(
                {"lib/apk/db/installed": apk_installed([ApkPackage("zlib", "1.3.1-r0")])},
                compression="zstd",
            ),
        ],
        flavour="docker",
    )
    assert image.manifest.count(b"rootfs.diff.tar.zstd") == 1
    result = await _scan(plain_registry, unique_repo, image)
    assert packages(result) == {("apk", "zlib", "1.3.1-r0", 0)}


async def test_multi_arch_index_scans_the_requested_platform(plain_registry, unique_repo):
    def arch_image(deb_arch: str, arch: str):
        return build_image(
            [
                Layer(
                    {
                        "var/lib/dpkg/status": dpkg_status(
                            [DebPackage("hello", "2.10-3", arch=deb_arch)]
                        )
                    }
                )
            ],
            architecture=arch,
        )

    index = build_index([arch_image("amd64", "amd64"), arch_image("arm64", "arm64")])
    await asyncio.to_thread(push, plain_registry.url, unique_repo, index, tag="multi")
    async with registry_client(plain_registry.url) as client:
        amd = await scan_reference(client, unique_repo, "multi")
        arm = await scan_reference(client, unique_repo, "multi", platform="linux/arm64")
    assert [r.package.arch for r in amd.packages] == ["amd64"]
    assert [r.package.arch for r in arm.packages] == ["arm64"]
    assert amd.index_digest == arm.index_digest == index.digest
    assert (amd.platform, arm.platform) == ("linux/amd64", "linux/arm64")


async def test_symlinked_database_directory_is_followed(plain_registry, unique_repo):
    # merged-/usr: lib -> usr/lib, the apk database physically under usr/lib
    image = build_image(
        [
            Layer(
                {
                    "lib": Symlink("usr/lib"),
                    "usr/lib/apk/db/installed": apk_installed([ApkPackage("wolfi-base", "1-r5")]),
                }
            ),
        ]
    )
    result = await _scan(plain_registry, unique_repo, image)
    assert ("apk", "wolfi-base", "1-r5", 0) in packages(result)


# ---------------------------------------------------------------- bad input


async def test_truncated_gzip_layer_gives_a_warning(plain_registry, unique_repo):
    good = Layer({"var/lib/dpkg/status": dpkg_status([DebPackage("bash", "5.2")])})
    tar = Layer(
        {
            "noise": os.urandom(300_000),  # incompressible, so cutting the tail cuts real data
            "var/lib/dpkg/status.d/x": dpkg_status([DebPackage("late", "1.0")]),
        }
    )
    from tests.support.images import make_tar

    tar_bytes = make_tar(tar.files)
    blob = gzip.compress(tar_bytes)[:-5000]
    image = build_image([good, Layer(blob=blob, diff_id=sha256_digest(tar_bytes))])
    result = await _scan(plain_registry, unique_repo, image)
    assert packages(result) == {("deb", "bash", "5.2", 0)}
    assert any("layer 1" in w and "truncated" in w for w in result.warnings), result.warnings


async def test_gzip_bomb_stops_at_the_layer_limit(plain_registry, unique_repo):
    from tests.support.images import make_tar

    tar_bytes = make_tar({"big": b"\0" * (64 << 20)})
    image = build_image([Layer(blob=gzip.compress(tar_bytes, 9), diff_id=sha256_digest(tar_bytes))])
    result = await _scan(
        plain_registry, unique_repo, image, limits=ScanLimits(max_layer_bytes=8 << 20)
    )
    assert any("per-layer limit" in w for w in result.warnings), result.warnings
    assert result.layers[0].uncompressed_size <= (8 << 20) + (1 << 20)


async def test_dotdot_names_and_symlink_loops_are_contained(plain_registry, unique_repo):
    evil = raw_tar(
        [
            ("../../var/lib/dpkg/status", "file", dpkg_status([DebPackage("evil", "6.6.6")])),
            ("/etc/os-release", "file", os_release("debian", "12").decode()),
            ("loop-a", "symlink", "loop-b"),
            ("loop-b", "symlink", "loop-a"),
            ("var/lib/dpkg/status.d", "symlink", "../../../loop-a"),
            ("var/lib/dpkg/status", "symlink", "/var/lib/dpkg/status"),
        ]
    )
    image = build_image([Layer(tar=evil)])
    result = await asyncio.wait_for(_scan(plain_registry, unique_repo, image), 30)
    assert packages(result) == set()
    assert any("climbs out of the root" in w for w in result.warnings)
    assert any("symlink loop" in w for w in result.warnings)
    assert (
        result.distro is not None and result.distro.id == "debian"
    )  # absolute name read relative to /


async def test_garbled_dpkg_status_is_a_reader_warning(plain_registry, unique_repo):
    garbled = b"Package: ok\nVersion: 1.0\nStatus: install ok installed\n\n\x00\xff\xfeVersion 2\n:::\n\nPackage: \n"
    image = build_image([Layer({"var/lib/dpkg/status": garbled})])
    result = await _scan(plain_registry, unique_repo, image)
    assert ("deb", "ok", "1.0", 0) in packages(result)
    assert any(w.startswith("dpkg: ") for w in result.warnings), result.warnings


async def test_blob_digest_mismatch_is_an_error(plain_registry, unique_repo):
    image = build_image([Layer({"var/lib/dpkg/status": dpkg_status([DebPackage("x", "1")])})])
    await asyncio.to_thread(push, plain_registry.url, unique_repo, image)
    proxy = await TamperProxy(plain_registry.url).start()
    try:
        proxy.corrupt_blobs = True
        async with registry_client(proxy.url) as client:
            with pytest.raises(DigestMismatch):
                await scan_reference(client, unique_repo, "latest")
    finally:
        await proxy.stop()


# ---------------------------------------------------------------- layer cache


async def test_shared_base_layer_is_downloaded_once(plain_registry, unique_repo, tmp_path):
    base = Layer(
        {**DEBIAN_RELEASE, "var/lib/dpkg/status": dpkg_status([DebPackage("base-files", "12.4")])}
    )
    images = [
        build_image([base, Layer({"app/version": str(i).encode()}, created_by=f"COPY app {i}")])
        for i in range(4)
    ]
    for i, image in enumerate(images):
        await asyncio.to_thread(push, plain_registry.url, unique_repo, image, tag=f"t{i}")
    proxy = await TamperProxy(plain_registry.url).start()
    cache = LayerCache(tmp_path / "cache", max_bytes=10 << 20)
    try:
        async with registry_client(proxy.url) as client:
            results = await asyncio.gather(
                *(scan_reference(client, unique_repo, f"t{i}", cache=cache) for i in range(4))
            )
        base_digest = images[0].layer_digests[0]
        base_gets = [p for m, p, _ in proxy.seen if m == "GET" and p.endswith(base_digest)]
        assert len(base_gets) == 1
        for result in results:
            assert packages(result) == {("deb", "base-files", "12.4", 0)}
        # a second process (new cache object on the same directory) reads nothing from the base
        again = LayerCache(tmp_path / "cache", max_bytes=10 << 20)
        async with registry_client(proxy.url) as client:
            result = await scan_reference(client, unique_repo, "t0", cache=again)
        assert [layer.from_cache for layer in result.layers] == [True, True]
        assert packages(result) == {("deb", "base-files", "12.4", 0)}
    finally:
        await proxy.stop()


def test_layer_cache_is_bounded(tmp_path):
    from cr_agent.image.layer import LayerContents

    cache = LayerCache(tmp_path, max_bytes=3000)
    for i in range(5):
        cache.put(f"k{i}", LayerContents(files={"f": bytes(1000)}))
    assert cache.total_bytes <= 3000
    assert cache.get("k0") is None and cache.get("k4") is not None


def test_default_catalogers_are_used():
    assert {c.name for c in default_catalogers()} >= {"dpkg", "apk"}


def _host_dpkg() -> tuple[set[tuple[str, str, str]], bytes, bytes]:
    """What dpkg itself says is installed here, and the files it says it from."""
    import shutil
    import subprocess

    if shutil.which("dpkg-query") is None or not os.path.exists("/var/lib/dpkg/status"):
        pytest.skip("not a Debian system")
    out = subprocess.run(
        [
            "dpkg-query",
            "-W",
            "-f",
            "${db:Status-Want} ${db:Status-Status} ${Package} ${Version} ${Architecture}\n",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    expected = {
        (name, version, arch)
        for want, status, name, version, arch in (line.split() for line in out.splitlines())
        if want in ("install", "hold") and status == "installed"
    }
    with open("/var/lib/dpkg/status", "rb") as fh:
        status_file = fh.read()
    with open("/usr/lib/os-release", "rb") as fh:
        release = fh.read()
    return expected, status_file, release


async def test_this_machines_real_dpkg_database(plain_registry, unique_repo):
    # the dpkg status and os-release of the Debian system the tests run on, as dpkg wrote them
    expected, status_file, release = await asyncio.to_thread(_host_dpkg)
    image = build_image(
        [
            Layer(
                {
                    "usr/lib/os-release": release,
                    "etc/os-release": Symlink("../usr/lib/os-release"),
                    "var/lib/dpkg/status": status_file,
                },
                created_by="ADD rootfs /",
            ),
        ]
    )
    result = await _scan(plain_registry, unique_repo, image)
    found = {(r.package.name, r.package.full_version, r.package.arch) for r in result.packages}
    assert found == expected
    assert result.distro is not None and result.distro.id == "debian"


async def test_event_loop_stays_responsive_during_a_big_layer(plain_registry, unique_repo):
    # layer work runs in worker threads: a service on the same loop keeps answering
    rng_files = {f"opt/blob{i}": os.urandom(1 << 20) for i in range(48)}
    image = build_image(
        [Layer({"var/lib/dpkg/status": dpkg_status([DebPackage("x", "1")]), **rng_files})]
    )
    await asyncio.to_thread(push, plain_registry.url, unique_repo, image)
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = loop.time()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    async with registry_client(plain_registry.url) as client:
        result = await scan_reference(client, unique_repo, "latest")
    done.set()
    await tick
    assert packages(result) == {("deb", "x", "1", 0)}
    assert result.layers[0].size > 48 << 20
    assert max(gaps) < 0.5, f"event loop stalled for {max(gaps):.2f}s"
