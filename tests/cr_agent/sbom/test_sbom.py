"""SBOM writers: purls in syft's form, CycloneDX 1.6 valid against its schema, SPDX 2.3 shape."""

from __future__ import annotations

import json

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from cr_agent.catalogers.base import Distro, Package
from cr_agent.sbom import purl_string, to_cyclonedx_json, to_native_json, to_spdx_json
from cr_agent.scan import LayerInfo, PackageRecord, ScanResult

DEBIAN = Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)")
ALPINE = Distro("alpine", "3.19.1")
RHEL = Distro("rhel", "9.3")


@pytest.mark.parametrize(
    ("package", "distro", "expected"),
    [
        (
            Package(
                "deb",
                "curl",
                "7.88.1-10+deb12u5",
                arch="amd64",
                source_name="curl",
                source_version="7.88.1-10+deb12u5",
            ),
            DEBIAN,
            "pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64&distro=debian-12",
        ),
        (
            Package(
                "deb",
                "libpam-runtime",
                "1.5.2-6+deb12u1",
                arch="all",
                source_name="pam",
                source_version="1.5.2-6+deb12u1",
            ),
            DEBIAN,
            "pkg:deb/debian/libpam-runtime@1.5.2-6%2Bdeb12u1?arch=all&distro=debian-12&upstream=pam",
        ),
        (
            Package(
                "deb",
                "libgmp10",
                "6.2.1+dfsg1-1.1",
                epoch=2,
                arch="amd64",
                source_name="gmp",
                source_version="2:6.2.1+dfsg1-1.1",
            ),
            DEBIAN,
            "pkg:deb/debian/libgmp10@2:6.2.1%2Bdfsg1-1.1?arch=amd64&distro=debian-12&upstream=gmp",
        ),
        (
            # origin equal to the name: no upstream (syft: OriginPackage != Package)
            Package("apk", "musl", "1.2.4-r2", arch="x86_64", source_name="musl"),
            ALPINE,
            "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1",
        ),
        (
            Package("apk", "libstdc++", "13.2.1-r0", arch="x86_64", source_name="gcc"),
            ALPINE,
            "pkg:apk/alpine/libstdc%2B%2B@13.2.1-r0?arch=x86_64&distro=alpine-3.19.1&upstream=gcc",
        ),
        (
            Package("deb", "libstdc++6", "12.2.0-14", arch="amd64", source_name="gcc-12"),
            DEBIAN,
            "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64&distro=debian-12&upstream=gcc-12",
        ),
        (
            Package(
                "rpm",
                "openssl-libs",
                "3.0.7",
                epoch=1,
                release="25.el9_3",
                arch="x86_64",
                extra=(("sourcerpm", "openssl-3.0.7-25.el9_3.src.rpm"),),
            ),
            RHEL,
            "pkg:rpm/redhat/openssl-libs@3.0.7-25.el9_3?arch=x86_64&distro=rhel-9.3&epoch=1"
            "&upstream=openssl-3.0.7-25.el9_3.src.rpm",
        ),
        (
            Package(
                "deb",
                "libgmp10",
                "6.2.1+dfsg1-1.1",
                epoch=2,
                arch="amd64",
                source_name="gmp",
                source_version="2:6.2.1+dfsg1-1",
            ),
            DEBIAN,
            "pkg:deb/debian/libgmp10@2:6.2.1%2Bdfsg1-1.1?arch=amd64&distro=debian-12"
            "&upstream=gmp%402:6.2.1%2Bdfsg1-1",
        ),
        (
            Package("rpm", "bash", "5.1.8", release="6.el9", arch="x86_64"),
            Distro("opensuse-leap", "15.5"),
            "pkg:rpm/opensuse/bash@5.1.8-6.el9?arch=x86_64&distro=opensuse-leap-15.5",
        ),
    ],
)
def test_purls_in_syft_form(package, distro, expected):
    # syft order: every qualifier sorted by key; parses back to the same values
    assert purl_string(package, distro) == expected
    parsed = PackageURL.from_string(expected)
    assert (parsed.name, parsed.qualifiers.get("arch")) == (package.name, package.arch)


def _result() -> ScanResult:
    layers = [
        LayerInfo(
            0,
            "sha256:" + "a" * 64,
            "sha256:" + "b" * 64,
            100,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "ADD rootfs /",
        ),
        LayerInfo(
            1,
            "sha256:" + "c" * 64,
            "sha256:" + "d" * 64,
            200,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "RUN apt-get install curl",
        ),
    ]
    packages = [
        PackageRecord(
            Package(
                "deb", "base-files", "12.4+deb12u5", arch="amd64", licenses=("GPL-2.0-or-later",)
            ),
            0,
            layers[0].diff_id,
            layers[0].created_by,
        ),
        PackageRecord(
            Package(
                "deb", "curl", "7.88.1-10+deb12u5", arch="amd64", licenses=("curl", "BSD-3-Clause")
            ),
            1,
            layers[1].diff_id,
            layers[1].created_by,
        ),
        PackageRecord(
            Package("deb", "odd", "1", arch="amd64", licenses=("GPL-2+", "mit")),
            1,
            layers[1].diff_id,
            None,
        ),
        PackageRecord(
            Package("apk", "dual", "2-r0", arch="x86_64", licenses=("MIT OR Apache-2.0",)),
            1,
            layers[1].diff_id,
            None,
        ),
    ]
    return ScanResult(
        repository="library/app",
        reference="v1",
        digest="sha256:" + "e" * 64,
        index_digest=None,
        platform="linux/amd64",
        config_digest="sha256:" + "f" * 64,
        registry="127.0.0.1:5000",
        distro=DEBIAN,
        layers=layers,
        packages=packages,
        warnings=["dpkg: something odd"],
    )


def test_cyclonedx_1_6_validates_and_carries_layers():
    text = to_cyclonedx_json(_result())
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    doc = json.loads(text)
    assert doc["specVersion"] == "1.6"
    assert doc["metadata"]["component"]["type"] == "container"
    libs = {c["name"]: c for c in doc["components"] if c["type"] == "library"}
    assert (
        libs["curl"]["purl"]
        == "pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64&distro=debian-12"
    )
    props = {p["name"]: p["value"] for p in libs["curl"]["properties"]}
    assert props["crbroker:layer:index"] == "1"
    assert props["crbroker:layer:createdBy"] == "RUN apt-get install curl"
    assert any(c["type"] == "operating-system" and c["name"] == "debian" for c in doc["components"])
    assert libs["odd"]["licenses"] == [{"license": {"name": "GPL-2+"}}, {"license": {"id": "MIT"}}]
    assert libs["dual"]["licenses"] == [{"expression": "MIT OR Apache-2.0"}]
    assert doc["dependencies"][0]["ref"] == doc["metadata"]["component"]["bom-ref"]


def test_cyclonedx_without_distro_or_packages_is_valid():
    result = _result()
    result.distro = None
    result.packages = []
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(to_cyclonedx_json(result)) is None


def test_spdx_2_3_document():
    doc = json.loads(to_spdx_json(_result()))
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["dataLicense"] == "CC0-1.0"
    names = [p["name"] for p in doc["packages"]]
    assert names == ["127.0.0.1:5000/library/app", "base-files", "curl", "odd", "dual"]
    curl = doc["packages"][2]
    assert curl["externalRefs"][0]["referenceLocator"].startswith("pkg:deb/debian/curl@")
    assert "layer 1" in curl["sourceInfo"]
    kinds = {r["relationshipType"] for r in doc["relationships"]}
    assert kinds == {"DESCRIBES", "CONTAINS"}
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(ids) == len(set(ids)) and all(i.startswith("SPDXRef-") for i in ids)


def test_native_json_has_layer_attribution():
    doc = json.loads(to_native_json(_result()))
    curl = next(p for p in doc["packages"] if p["name"] == "curl")
    assert curl["layer"] == {
        "index": 1,
        "diffId": "sha256:" + "d" * 64,
        "createdBy": "RUN apt-get install curl",
    }
    assert doc["warnings"] == ["dpkg: something odd"]
    assert doc["distro"]["id"] == "debian"


def test_spdx_document_passes_spdx_tools_validation(tmp_path):
    parse_anything = pytest.importorskip("spdx_tools.spdx.parser.parse_anything")
    validator = pytest.importorskip("spdx_tools.spdx.validation.document_validator")
    path = tmp_path / "doc.spdx.json"
    path.write_text(to_spdx_json(_result()))
    document = parse_anything.parse_file(str(path))
    messages = validator.validate_full_spdx_document(document)
    assert [m.validation_message for m in messages] == []
    assert len(document.packages) == 5


def test_sbom_text_is_what_json_dumps_writes():
    for writer in (to_cyclonedx_json, to_spdx_json, to_native_json):
        text = writer(_result())
        assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False)


def test_purl_and_version_match_packageurl():
    """One PackageURL per package gives the same text and version as packageurl-python's
    own qualifier handling (blank values dropped, keys sorted)."""
    from cr_agent.sbom.purl import package_purl, purl_and_version

    packages = [
        Package("deb", "curl", " 7.88 ", arch=" ", source_name="x", source_version="1"),
        Package("rpm", "bash", "5.1", epoch=0, release="1", extra=(("sourcerpm", " "),)),
        Package("apk", "musl", "1.2.4-r2", arch="x86_64", source_name="musl"),
    ]
    for package in packages:
        full = package_purl(package, DEBIAN)
        text, version = purl_and_version(package, DEBIAN)
        assert version == full.version
        assert (
            PackageURL.from_string(text).to_dict()
            == PackageURL.from_string(full.to_string()).to_dict()
        )


def test_document_stamps_are_uuid4_and_utc_time():
    import datetime as dt
    import time
    import uuid

    from cr_agent.sbom.stamps import random_uuid, utc_timestamp

    texts = {random_uuid() for _ in range(200)}
    assert len(texts) == 200
    for text in texts:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert utc_timestamp(dt.datetime(2024, 5, 1, 12, 0, 7, tzinfo=dt.UTC)) == "2024-05-01T12:00:07Z"
    before = time.time()
    stamp = dt.datetime.strptime(utc_timestamp(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert before - 2 <= stamp.timestamp() <= time.time() + 1


def test_cyclonedx_names_source_packages_as_syft_does():
    # syft's property names, which grype and trivy read back from a CycloneDX SBOM
    result = _result()
    layer_id = result.layers[0].diff_id
    # (type, name, epoch, version, source name, source version)
    rows = [
        ("deb", "libpam-runtime", None, "1.5.2-6+deb12u1", "pam", "1.5.2-6+deb12u1"),
        ("deb", "libgcc-s1", None, "12.2.0-14", "gcc-12", "12.2.0-14"),
        ("deb", "bash", None, "5.2.15-2+b2", "bash", "5.2.15-2"),
        ("deb", "login", 1, "4.13+dfsg1-1", "shadow", "1:4.13+dfsg1-1"),
        ("deb", "curl", None, "7.88.1-10+deb12u5", "curl", "7.88.1-10+deb12u5"),
        ("apk", "libcrypto3", None, "3.3.1-r0", "openssl", "3.3.1-r0"),
    ]
    packages = [
        Package(kind, name, version, epoch=epoch, source_name=source, source_version=source_version)
        for kind, name, epoch, version, source, source_version in rows
    ]
    packages.append(
        Package(
            "rpm",
            "openssl-libs",
            "3.0.7",
            epoch=1,
            release="25.el9",
            source_name="openssl",
            source_version="3.0.7-25.el9",
            extra=(("sourcerpm", "openssl-3.0.7-25.el9.src.rpm"),),
        )
    )
    result.packages = [PackageRecord(package, 0, layer_id, None) for package in packages]
    text = to_cyclonedx_json(result)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    syft = {
        c["name"]: {p["name"]: p["value"] for p in c["properties"] if p["name"].startswith("syft:")}
        for c in json.loads(text)["components"]
        if c["type"] == "library"
    }
    assert syft == {
        "libpam-runtime": {"syft:metadata:source": "pam"},
        "libgcc-s1": {"syft:metadata:source": "gcc-12"},
        "bash": {"syft:metadata:sourceVersion": "5.2.15-2"},
        "login": {"syft:metadata:source": "shadow"},
        "curl": {},
        "libcrypto3": {"syft:metadata:originPackage": "openssl"},
        "openssl-libs": {"syft:metadata:sourceRpm": "openssl-3.0.7-25.el9.src.rpm"},
    }
