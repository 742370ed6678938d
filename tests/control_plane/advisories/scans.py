"""Scans of images built in code, through the real catalogers and SBOM writers."""

from __future__ import annotations

from typing import Any

from cr_agent.catalogers.base import Distro, Package
from cr_agent.catalogers.dpkg import DpkgCataloger
from cr_agent.sbom.native import native_document
from cr_agent.scan import LayerInfo, PackageRecord, ScanResult


def layer(index: int) -> LayerInfo:
    return LayerInfo(
        index,
        f"sha256:{index:064x}",
        f"sha256:{index + 100:064x}",
        1000,
        "application/vnd.oci.image.layer.v1.tar+gzip",
        f"RUN step {index}",
    )


def scan_result(distro: Distro, layers_of_packages: list[list[Package]]) -> ScanResult:
    """The scan of an image whose layer N added layers_of_packages[N]."""
    layers = [layer(i) for i in range(len(layers_of_packages))]
    records = [
        PackageRecord(package, info.index, info.diff_id, info.created_by)
        for info, packages in zip(layers, layers_of_packages, strict=True)
        for package in packages
    ]
    result = ScanResult(
        repository="library/app",
        reference="1",
        digest="sha256:" + "e" * 64,
        index_digest=None,
        platform="linux/amd64",
        config_digest="sha256:" + "f" * 64,
        registry="127.0.0.1:5000",
        distro=distro,
        layers=layers,
        packages=records,
        warnings=[],
    )
    return result


def scan_document(distro: Distro, layers_of_packages: list[list[Package]]) -> dict[str, Any]:
    """The native scan JSON (what the agent sends) of that image."""
    return native_document(scan_result(distro, layers_of_packages))


def dpkg_status(*paragraphs: dict[str, str]) -> bytes:
    text = ""
    for fields in paragraphs:
        fields = {"Status": "install ok installed", "Architecture": "amd64", **fields}
        text += "".join(f"{key}: {value}\n" for key, value in fields.items()) + "\n"
    return text.encode()


def dpkg_packages(*paragraphs: dict[str, str]) -> list[Package]:
    result = DpkgCataloger().catalog({"var/lib/dpkg/status": dpkg_status(*paragraphs)})
    assert result.warnings == []
    return result.packages


# openssl-libs of RHEL 9 as the rpm cataloger records it: epoch 1, built from openssl
OPENSSL_LIBS_EL9 = Package(
    "rpm",
    "openssl-libs",
    "3.0.7",
    epoch=1,
    release="25.el9",
    arch="x86_64",
    source_name="openssl",
    source_version="3.0.7-25.el9",
    extra=(("sourcerpm", "openssl-3.0.7-25.el9.src.rpm"),),
)
