"""Sample images with real-format package databases, for the demo, the e2e tests and bench.

Each :class:`SampleImage` is built in code (``tests.support.images``), knows which distro and
which packages a correct scan must report, and can be pushed to any registry. Four shapes:
a Debian-like image (dpkg ``status``), a distroless one (``status.d`` files), an Alpine-like
one (apk ``installed``) and an rpm one carrying the rpmdb.sqlite that
``tests/fixtures/rpmdb/make_fixtures.py`` wrote with Debian's rpm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.images import (
    ApkPackage,
    BuiltImage,
    DebPackage,
    EmptyStep,
    Layer,
    apk_installed,
    build_image,
    dpkg_status,
    os_release,
    push,
)

REPO = Path(__file__).resolve().parents[1]
RPM_FIXTURES = REPO / "tests" / "fixtures" / "rpmdb"


@dataclass(frozen=True)
class SampleImage:
    """An image to push plus what a scan of it must find."""

    repository: str
    tag: str
    image: BuiltImage
    distro_id: str
    #: package name -> full version as the distro writes it
    packages: dict[str, str] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"

    def push(
        self, base_url: str, *, username: str | None = None, password: str | None = None
    ) -> str:
        return push(
            base_url,
            self.repository,
            self.image,
            tag=self.tag,
            username=username,
            password=password,
        )


# Versions as Debian bookworm / Alpine 3.19 ship them, so the SBOMs look like real ones.
DEBIAN_PACKAGES = [
    DebPackage("base-files", "12.4+deb12u5"),
    DebPackage("bash", "5.2.15-2+b2"),
    DebPackage("coreutils", "9.1-1"),
    DebPackage("libc6", "2.36-9+deb12u4", source="glibc"),
    DebPackage("libssl3", "3.0.11-1~deb12u2", source="openssl"),
    DebPackage("zlib1g", "1:1.2.13.dfsg-1", source="zlib"),
]
DEBIAN_APP_PACKAGES = [
    DebPackage("curl", "7.88.1-10+deb12u5"),
    DebPackage("ca-certificates", "20230311", arch="all"),
]
DISTROLESS_PACKAGES = [
    DebPackage("base-files", "12.4+deb12u5"),
    DebPackage("netbase", "6.4", arch="all"),
    DebPackage("tzdata", "2024a-0+deb12u1", arch="all"),
    DebPackage("libc6", "2.36-9+deb12u4", source="glibc"),
]
ALPINE_PACKAGES = [
    ApkPackage("musl", "1.2.4_git20230717-r4"),
    ApkPackage("busybox", "1.36.1-r15", license="GPL-2.0-only"),
    ApkPackage("alpine-baselayout", "3.4.3-r2", license="GPL-2.0-only"),
    ApkPackage("apk-tools", "2.14.0-r5", license="GPL-2.0-only"),
    ApkPackage("zlib", "1.3.1-r0", license="Zlib"),
]


def _debian_like() -> SampleImage:
    image = build_image(
        [
            Layer(
                {
                    "etc/os-release": os_release(
                        "debian",
                        "12",
                        pretty_name="Debian GNU/Linux 12 (bookworm)",
                        codename="bookworm",
                    ),
                    "var/lib/dpkg/status": dpkg_status(DEBIAN_PACKAGES),
                    "bin/bash": b"\x7fELF bash stand-in",
                },
                created_by="ADD rootfs.tar.xz /",
            ),
            EmptyStep('CMD ["bash"]'),
            Layer(
                {"var/lib/dpkg/status": dpkg_status(DEBIAN_PACKAGES + DEBIAN_APP_PACKAGES)},
                created_by="RUN apt-get install -y curl ca-certificates",
            ),
        ],
        flavour="docker",
    )
    packages = {p.name: p.version for p in DEBIAN_PACKAGES + DEBIAN_APP_PACKAGES}
    return SampleImage("demo/debian-like", "12", image, "debian", packages)


def _distroless() -> SampleImage:
    files = {
        "etc/os-release": os_release("debian", "12", pretty_name="Distroless", codename="bookworm"),
    }
    for pkg in DISTROLESS_PACKAGES:
        files[f"var/lib/dpkg/status.d/{pkg.name}"] = dpkg_status([pkg])
    image = build_image([Layer(files, created_by="bazel build //base:static")])
    packages = {p.name: p.version for p in DISTROLESS_PACKAGES}
    return SampleImage("demo/distroless", "nonroot", image, "debian", packages)


def _alpine_like() -> SampleImage:
    image = build_image(
        [
            Layer(
                {
                    "etc/os-release": os_release(
                        "alpine", "3.19.1", pretty_name="Alpine Linux v3.19"
                    ),
                    "lib/apk/db/installed": apk_installed(ALPINE_PACKAGES),
                    "bin/busybox": b"\x7fELF busybox stand-in",
                },
                compression="zstd",
                created_by="ADD alpine-minirootfs-3.19.1-x86_64.tar.gz /",
            )
        ]
    )
    packages = {p.name: p.version for p in ALPINE_PACKAGES}
    return SampleImage("demo/alpine-like", "3.19", image, "alpine", packages)


def rpm_expected() -> dict[str, str]:
    """name -> epoch:version-release from the fixture's expected.tsv (written by rpm itself)."""
    out: dict[str, str] = {}
    for line in (RPM_FIXTURES / "expected.tsv").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, epoch, version, release = line.split("\t")[:4]
        full = f"{version}-{release}"
        if epoch not in ("(none)", "0"):
            full = f"{epoch}:{full}"
        out[name] = full
    return out


def _rpm_based() -> SampleImage | None:
    database = RPM_FIXTURES / "sqlite" / "rpmdb.sqlite"
    if not database.is_file():
        return None
    image = build_image(
        [
            Layer(
                {
                    "etc/os-release": os_release(
                        "fedora",
                        "40",
                        pretty_name="Fedora Linux 40 (Container Image)",
                        id_like=None,
                    ),
                    "usr/lib/sysimage/rpm/rpmdb.sqlite": database.read_bytes(),
                },
                created_by="KIWI image build",
            )
        ]
    )
    return SampleImage("demo/rpm-based", "40", image, "fedora", rpm_expected())


def many_packages_image(count: int, *, repository: str = "demo/many-packages") -> SampleImage:
    """A Debian-like image with ``count`` packages: a large SBOM (about 1 KB per package)."""
    debs = [DebPackage(f"lib-many-{i:05d}", f"{i % 7}.{i}-{i % 3 + 1}") for i in range(count)]
    image = build_image(
        [
            Layer(
                {
                    "etc/os-release": os_release("debian", "12", codename="bookworm"),
                    "var/lib/dpkg/status": dpkg_status(debs),
                },
                created_by="RUN apt-get install -y everything",
            )
        ]
    )
    return SampleImage(repository, str(count), image, "debian", {p.name: p.version for p in debs})


def sample_images() -> list[SampleImage]:
    """Every sample image this checkout can build (the rpm one needs the committed fixture)."""
    images = [_debian_like(), _distroless(), _alpine_like()]
    rpm = _rpm_based()
    if rpm is not None:
        images.append(rpm)
    return images


def push_all(
    images: Sequence[SampleImage],
    base_url: str,
    *,
    username: str | None = None,
    password: str | None = None,
) -> dict[str, str]:
    """Push every image; reference -> manifest digest."""
    return {s.reference: s.push(base_url, username=username, password=password) for s in images}
