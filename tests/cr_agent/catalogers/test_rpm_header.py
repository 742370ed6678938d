"""The rpm header blob parser on real blobs and on hand-laid edge cases."""

from __future__ import annotations

import random

import pytest

from cr_agent.catalogers.rpm_header import (
    TAG_ARCH,
    TAG_EPOCH,
    TAG_LICENSE,
    TAG_NAME,
    TAG_RELEASE,
    TAG_SOURCERPM,
    TAG_SUMMARY,
    TAG_VERSION,
    HeaderError,
    package_from_header,
    parse_header,
    split_source_rpm,
)
from cr_agent.catalogers.rpm_sqlite import read_sqlite_blobs
from tests.cr_agent.catalogers.rpm_fixtures import SQLITE_DB, encode_header


def real_blobs() -> list[bytes]:
    blobs, warnings = read_sqlite_blobs(SQLITE_DB.read_bytes(), "rpmdb.sqlite")
    assert warnings == []
    return blobs


def test_real_blob_has_region_and_all_package_tags() -> None:
    for blob in real_blobs():
        header = parse_header(blob)
        assert header.string(TAG_NAME)
        assert header.string(TAG_VERSION) and header.string(TAG_RELEASE)
        assert header.string(TAG_SUMMARY), "I18N summary decoded to its first (C) string"
        assert 63 not in header.entries  # the immutable region entry carries no package fact


def test_string_array_i18n_int_and_binary_entries() -> None:
    blob = encode_header(
        [
            (TAG_NAME, 6, "bash"),
            (TAG_VERSION, 6, "5.1.8"),
            (TAG_RELEASE, 6, "9.el9"),
            (TAG_EPOCH, 4, [3]),
            (TAG_SUMMARY, 9, ["The GNU Bourne Again shell", "Das GNU Shell"]),
            (1047, 8, ["bash", "/bin/sh", "config(bash)"]),  # PROVIDENAME
            (1009, 4, [7_000_000]),  # SIZE
            (261, 7, b"\x01\x02\x03"),  # SIGMD5
            (TAG_ARCH, 6, "aarch64"),
            (TAG_SOURCERPM, 6, "bash-5.1.8-9.el9.src.rpm"),
            (TAG_LICENSE, 6, "GPLv3+"),
        ]
    )
    header = parse_header(blob)
    assert header.entries[1047] == ("bash", "/bin/sh", "config(bash)")
    assert header.entries[261] == b"\x01\x02\x03"
    assert header.string(TAG_SUMMARY) == "The GNU Bourne Again shell"
    package = package_from_header(blob, "var/lib/rpm/rpmdb.sqlite")
    assert (package.name, package.epoch, package.full_version) == ("bash", 3, "3:5.1.8-9.el9")
    assert (package.source_name, package.source_version) == ("bash", "5.1.8-9.el9")
    assert package.licenses == ("GPLv3+",)
    assert ("size", "7000000") in package.extra


def test_header_without_name_is_an_error() -> None:
    with pytest.raises(HeaderError, match="no NAME or VERSION"):
        package_from_header(encode_header([(TAG_VERSION, 6, "1")]), "db")


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x00\x00", "shorter than its 8-byte preamble"),
        (b"\x00\x00\x00\x00\x00\x00\x00\x00", "claims 0 entries"),
        (b"\x00\x01\x00\x00\x00\x00\x00\x00", "claims 65536 entries"),
        (b"\x00\x00\x00\x01\x10\x00\x00\x00", "data bytes \\(limit"),
        (b"\x00\x00\x00\x02\x00\x00\x00\x04" + bytes(16), "needs 44 bytes"),
    ],
)
def test_malformed_preamble(blob: bytes, message: str) -> None:
    with pytest.raises(HeaderError, match=message):
        parse_header(blob)


def test_bad_entries_are_named() -> None:
    good = encode_header([(TAG_NAME, 6, "x"), (TAG_VERSION, 6, "1")])
    # Second entry's offset (bytes 8+16+8..) pointed past the data.
    bad_offset = good[:32] + (10_000).to_bytes(4, "big") + good[36:]
    with pytest.raises(HeaderError, match="tag 1001: data offset 10000 outside"):
        parse_header(bad_offset)
    unterminated = encode_header([(TAG_NAME, 6, "x")])[:-1]
    unterminated = unterminated[:4] + (len(unterminated) - 24).to_bytes(4, "big") + unterminated[8:]
    with pytest.raises(HeaderError, match="not terminated"):
        parse_header(unterminated)
    unknown_type = good[:12] + (42).to_bytes(4, "big") + good[16:]
    with pytest.raises(HeaderError, match="unknown entry type 42"):
        parse_header(unknown_type)


def test_source_rpm_split() -> None:
    assert split_source_rpm("glibc-2.31-9.3.2.src.rpm") == ("glibc", "2.31", "9.3.2")
    assert split_source_rpm("python3-pip-21.2.3-6.el9.src.rpm") == (
        "python3-pip",
        "21.2.3",
        "6.el9",
    )
    assert split_source_rpm("kernel-5.14.0-1.nosrc.rpm") == ("kernel", "5.14.0", "1")
    assert split_source_rpm("(none)") is None
    assert split_source_rpm("weird.src.rpm") is None


def test_random_damage_raises_only_header_error() -> None:
    rng = random.Random(42)
    blobs = real_blobs()
    for _ in range(3000):
        blob = bytearray(rng.choice(blobs))
        for _ in range(rng.randint(1, 12)):
            blob[rng.randrange(len(blob))] = rng.getrandbits(8)
        try:
            package_from_header(bytes(blob[: rng.randrange(1, len(blob) + 1)]), "db")
        except HeaderError:
            pass
