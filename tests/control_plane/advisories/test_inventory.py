"""Inventories from what the control plane stores of a scan: the native JSON and CycloneDX
(ours and syft's), so that stored scans can be matched again without rescanning."""

from __future__ import annotations

import dataclasses
import json

import pytest

from control_plane.advisories.inventory import (
    InventoryError,
    inventory_from_cyclonedx,
    inventory_from_scan,
)
from cr_agent.catalogers.apk import ApkCataloger
from cr_agent.catalogers.base import Distro, Package
from cr_agent.sbom.cyclonedx import to_cyclonedx_json
from cr_agent.sbom.native import native_document
from tests.control_plane.advisories.scans import (
    OPENSSL_LIBS_EL9,
    dpkg_packages,
    layer,
    scan_result,
)


def _without_refs(packages):
    return [p._replace(ref=None) for p in packages]


@pytest.mark.parametrize(
    ("distro", "layers"),
    [
        (
            Distro("debian", "12"),
            [
                dpkg_packages(
                    {"Package": "libssl3", "Source": "openssl", "Version": "3.0.11-1~deb12u2"},
                    {"Package": "login", "Version": "1:4.13+dfsg1-1", "Source": "shadow"},
                    {
                        "Package": "libgcc-s1",
                        "Version": "12.2.0-14",
                        "Source": "gcc-12 (12.2.0-14)",
                    },
                ),
                dpkg_packages({"Package": "curl", "Version": "7.88.1-10+deb12u5"}),
            ],
        ),
        (
            Distro("alpine", "3.20.3"),
            [
                ApkCataloger()
                .catalog({"lib/apk/db/installed": b"P:libcrypto3\nV:3.3.1-r0\no:openssl\n\n"})
                .packages
            ],
        ),
        (
            Distro("rhel", "9.4"),
            [
                [
                    OPENSSL_LIBS_EL9,
                    Package(
                        "rpm",
                        "bash",
                        "5.1.8",
                        release="9.el9",
                        source_name="bash",
                        source_version="5.1.8-9.el9",
                    ),
                ]
            ],
        ),
    ],
)
def test_cyclonedx_gives_the_inventory_the_native_json_gives(
    distro: Distro, layers: list[list[Package]]
) -> None:
    result = scan_result(distro, layers)
    native = inventory_from_scan(native_document(result))
    cyclonedx = inventory_from_cyclonedx(json.loads(to_cyclonedx_json(result)))
    assert (cyclonedx.distro_id, cyclonedx.distro_version) == (
        native.distro_id,
        native.distro_version,
    )
    assert _without_refs(cyclonedx.packages) == _without_refs(native.packages)
    assert all(p.ref and p.ref.startswith("pkg:") for p in cyclonedx.packages)


def test_rpm_source_version_carries_the_binary_epoch() -> None:
    # without the sourcerpm fact: the source version from the record alone
    package = dataclasses.replace(OPENSSL_LIBS_EL9, extra=())
    result = scan_result(Distro("rhel", "9.4"), [[package]])
    [found] = inventory_from_cyclonedx(json.loads(to_cyclonedx_json(result))).packages
    assert (found.version, found.source_version) == ("1:3.0.7-25.el9", "1:3.0.7-25.el9")
    assert found.layer_index == 0 and found.layer_diff_id == layer(0).diff_id


def test_syft_cyclonedx() -> None:
    # the shape syft writes: source packages in syft:metadata properties, layer as layerID
    def component(purl: str, name: str, version: str, **props: str) -> dict[str, object]:
        return {
            "bom-ref": f"ref-{name}",
            "type": "library",
            "name": name,
            "version": version,
            "purl": purl,
            "properties": [{"name": k.replace("_", ":"), "value": v} for k, v in props.items()],
        }

    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "components": [
            {"type": "operating-system", "name": "debian", "version": "12"},
            component(
                "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12",
                "libssl3",
                "3.0.11-1~deb12u2",
                syft_metadata_source="openssl",
                syft_location_0_layerID="sha256:abc",
            ),
            component(
                "pkg:apk/alpine/libcrypto3@3.3.1-r0",
                "libcrypto3",
                "3.3.1-r0",
                syft_metadata_originPackage="openssl",
            ),
            component(
                "pkg:rpm/redhat/openssl-libs@3.0.7-25.el9?epoch=1",
                "openssl-libs",
                "3.0.7-25.el9",
                syft_metadata_sourceRpm="openssl-3.0.7-25.el9.src.rpm",
            ),
            component("pkg:pypi/requests@2.31.0", "requests", "2.31.0"),
        ],
    }
    inventory = inventory_from_cyclonedx(doc)
    assert (inventory.distro_id, inventory.distro_version) == ("debian", "12")
    assert [
        (p.type, p.name, p.version, p.source_name, p.source_version, p.layer_diff_id)
        for p in inventory.packages
    ] == [
        ("deb", "libssl3", "3.0.11-1~deb12u2", "openssl", "3.0.11-1~deb12u2", "sha256:abc"),
        ("apk", "libcrypto3", "3.3.1-r0", "openssl", "3.3.1-r0", None),
        ("rpm", "openssl-libs", "1:3.0.7-25.el9", "openssl", "1:3.0.7-25.el9", None),
    ]


def test_bad_cyclonedx_names_the_field() -> None:
    with pytest.raises(InventoryError, match="bomFormat is not CycloneDX"):
        inventory_from_cyclonedx({"bomFormat": "SPDX"})
    bad_purl = {"bomFormat": "CycloneDX", "components": [{"type": "library", "purl": "nonsense"}]}
    with pytest.raises(InventoryError, match=r"components\[0\]\.purl"):
        inventory_from_cyclonedx(bad_purl)
