"""Reading advisory files in every supported format, and surviving malformed ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from control_plane.advisories.advisory_files import read_path, read_paths
from control_plane.advisories.records import Severity, Stream
from tests.control_plane.advisories.feeds import (
    CVSS_HIGH,
    osv,
    secdb,
    tracker,
    tracker_release,
    write_all_zip,
    write_json,
)


def test_single_osv_record(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "DSA-5555-1.json",
        osv(
            "DSA-5555-1",
            "Debian:12",
            "openssl",
            fixed="3.0.11-1~deb12u2",
            aliases=("CVE-2023-5678",),
            modified="2024-05-01T12:30:00+02:00",
            cvss=CVSS_HIGH,
        ),
    )
    outcome = read_path(path)
    assert outcome.skipped == []
    [advisory] = outcome.advisories
    assert advisory.id == "DSA-5555-1"
    assert advisory.aliases == ("CVE-2023-5678",)
    assert advisory.modified == "2024-05-01T10:30:00Z"  # normalised to UTC
    assert advisory.severity == (Severity("CVSS_V3", CVSS_HIGH),)
    [entry] = advisory.affected
    assert (entry.stream, entry.package, entry.fixed, entry.introduced) == (
        Stream("debian", "12"),
        "openssl",
        "3.0.11-1~deb12u2",
        None,
    )


def test_directory_of_records_and_a_list_document(tmp_path: Path) -> None:
    write_json(
        tmp_path / "feed" / "a.json", osv("ALPINE-1", "Alpine:v3.20", "musl", fixed="1.2.5-r1")
    )
    write_json(
        tmp_path / "feed" / "sub" / "b.json",
        [
            osv("UBUNTU-CVE-2024-1", "Ubuntu:22.04:LTS", "curl", fixed="7.81.0-1ubuntu1.16"),
            osv("RLSA-2024:1", "Rocky Linux:9", "openssl-libs", fixed="1:3.0.7-27.el9"),
        ],
    )
    (tmp_path / "feed" / "notes.txt").write_text("not an advisory")
    outcome = read_path(tmp_path / "feed")
    assert outcome.skipped == []
    assert sorted((a.id, str(a.affected[0].stream)) for a in outcome.advisories) == [
        ("ALPINE-1", "alpine 3.20"),
        ("RLSA-2024:1", "rocky 9"),
        ("UBUNTU-CVE-2024-1", "ubuntu 22.04"),
    ]


def test_osv_all_zip_with_a_broken_member(tmp_path: Path) -> None:
    records = [
        osv("DEBIAN-CVE-2024-0001", "Debian:12", "glibc", fixed="2.36-9+deb12u4"),
        osv("DEBIAN-CVE-2024-0002", "Debian:11", "glibc"),  # unfixed
        osv(
            "RHSA-2024:0001",
            "Red Hat:enterprise_linux:9::appstream",
            "openssl",
            fixed="1:3.0.7-27.el9",
            extra_affected=(
                {
                    "package": {
                        "ecosystem": "Red Hat:enterprise_linux:9::baseos",
                        "name": "openssl",
                    },
                    "ranges": [
                        {
                            "type": "ECOSYSTEM",
                            "events": [{"introduced": "0"}, {"fixed": "1:3.0.7-27.el9"}],
                        }
                    ],
                },
            ),
        ),
    ]
    path = write_all_zip(tmp_path / "all.zip", records, raw={"broken.json": b"{not json"})
    outcome = read_path(path)
    assert [a.id for a in outcome.advisories] == [r["id"] for r in records]
    unfixed = outcome.advisories[1].affected[0]
    assert unfixed.fixed is None
    # appstream and baseos name the same stream and package: one entry
    assert len(outcome.advisories[2].affected) == 1
    [skip] = outcome.skipped
    assert skip.where == f"{path}:broken.json"
    assert skip.field == "(file)"
    assert skip.reason.startswith("not JSON")


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (lambda r: r.pop("id"), "id", "missing"),
        (lambda r: r.pop("modified"), "modified", "expected an RFC 3339 timestamp, got NoneType"),
        (
            lambda r: r.update(modified="yesterday"),
            "modified",
            "not an RFC 3339 timestamp: 'yesterday'",
        ),
        (lambda r: r.update(aliases="CVE-1"), "aliases", "expected a list, got str"),
        (lambda r: r["affected"][0].pop("package"), "affected[0].package", "missing"),
        (
            lambda r: r["affected"][0]["package"].update(name=""),
            "affected[0].package.name",
            "expected a non-empty string",
        ),
        (
            lambda r: r["affected"][0]["ranges"][0]["events"][1].update(fixed=7),
            "affected[0].ranges[0].events[1].fixed",
            "expected a non-empty string",
        ),
        (
            lambda r: r["affected"][0]["ranges"][0]["events"][1].update(fixed="not a version!"),
            "affected[0].ranges[0].events[1].fixed",
            "not a dpkg version: 'not a version!'",
        ),
        (
            lambda r: r["affected"][0]["ranges"][0].update(events=[]),
            "affected[0].ranges[0].events",
            "empty",
        ),
        (
            lambda r: r.update(severity=[{"type": "CVSS_V3"}]),
            "severity[0].score",
            "missing",
        ),
    ],
)
def test_malformed_osv_record_is_skipped_naming_record_and_field(
    tmp_path: Path, change, field: str, reason: str
) -> None:
    good = osv("DSA-1-1", "Debian:12", "bash", fixed="5.2.15-2+b2")
    bad = osv("DSA-2-1", "Debian:12", "bash", fixed="5.2.15-2+b3")
    change(bad)
    path = write_json(tmp_path / "feed.json", [good, bad])
    outcome = read_path(path)
    assert [a.id for a in outcome.advisories] == ["DSA-1-1"]
    [skip] = outcome.skipped
    assert skip.where.startswith(f"{path}[1]")
    if "id" in bad:
        assert skip.where == f"{path}[1] (DSA-2-1)"
    assert (skip.field, skip.reason) == (field, reason)


def test_unknown_ecosystem_entries_are_left_out_and_a_record_with_only_those_skipped(
    tmp_path: Path,
) -> None:
    mixed = osv(
        "MIXED-1",
        "Debian:12",
        "python3.11",
        fixed="3.11.2-6+deb12u2",
        extra_affected=(
            {
                "package": {"ecosystem": "PyPI", "name": "requests"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.32.0"}]}
                ],
            },
        ),
    )
    foreign = osv("FOO-1", "FooLinux:1", "foo", fixed="1.0")
    outcome = read_path(write_json(tmp_path / "f.json", [mixed, foreign]))
    [advisory] = outcome.advisories
    assert [e.ecosystem for e in advisory.affected] == ["Debian:12"]
    [skip] = outcome.skipped
    assert (skip.field, skip.reason) == (
        "affected",
        "no distro ecosystem this matcher knows (saw FooLinux:1)",
    )


def test_withdrawn_record_is_read_even_without_affected(tmp_path: Path) -> None:
    record = osv("DSA-9-1", "Debian:12", "bash", withdrawn="2024-06-01T00:00:00Z")
    record["affected"] = []
    [advisory] = read_path(write_json(tmp_path / "w.json", record)).advisories
    assert advisory.withdrawn == "2024-06-01T00:00:00Z"


def test_osv_severity_sources(tmp_path: Path) -> None:
    record = osv("USN-1-1", "Ubuntu:22.04:LTS", "curl", fixed="7.81.0-1ubuntu1.16")
    record["severity"] = [{"type": "Ubuntu", "score": "medium"}]
    record["affected"][0]["ecosystem_specific"] = {"urgency": "high"}
    [advisory] = read_path(write_json(tmp_path / "u.json", record)).advisories
    assert advisory.severity == (Severity("distro", "medium"),)
    assert advisory.affected[0].severity == (Severity("distro", "high"),)


def test_osv_last_affected_and_introduced(tmp_path: Path) -> None:
    record = osv("X-1", "Alpine:v3.19", "busybox")
    record["affected"][0]["ranges"][0]["events"] = [
        {"introduced": "1.36.0-r0"},
        {"last_affected": "1.36.1-r15"},
        {"introduced": "1.37.0-r0"},
    ]
    [advisory] = read_path(write_json(tmp_path / "x.json", record)).advisories
    assert [(e.introduced, e.fixed, e.last_affected) for e in advisory.affected] == [
        ("1.36.0-r0", None, "1.36.1-r15"),
        ("1.37.0-r0", None, None),
    ]


def test_alpine_secdb(tmp_path: Path) -> None:
    doc = secdb(
        "v3.20",
        {
            "openssl": {
                "3.3.2-r0": ["CVE-2024-6119"],
                "3.1.4-r1": ["CVE-2023-5363 (reverted later)", "CVE-2023-5678"],
                "0": ["CVE-2022-0001"],  # never affected Alpine's build
            },
            "musl": {"1.2.4_git20230717-r5": ["CVE-2025-26519"]},
            "broken": {"not-a-version": ["CVE-2024-9999"]},
        },
    )
    doc["packages"].append({"pkg": {"secfixes": {}}})
    outcome = read_path(write_json(tmp_path / "v3.20-main.json", doc))
    found = {a.id: [(e.stream, e.package, e.fixed) for e in a.affected] for a in outcome.advisories}
    alpine = Stream("alpine", "3.20")
    assert found == {
        "CVE-2024-6119": [(alpine, "openssl", "3.3.2-r0")],
        "CVE-2023-5363": [(alpine, "openssl", "3.1.4-r1")],
        "CVE-2023-5678": [(alpine, "openssl", "3.1.4-r1")],
        "CVE-2025-26519": [(alpine, "musl", "1.2.4_git20230717-r5")],
    }
    assert all(a.source == "alpine-secdb" and a.modified is None for a in outcome.advisories)
    # secdb repeats a CVE in every release's and repository's file: the scope tells them apart
    assert {a.scope for a in outcome.advisories} == {"alpine 3.20 main"}
    assert sorted(str(s) for s in outcome.skipped) == sorted(
        [
            f"{tmp_path / 'v3.20-main.json'} (broken not-a-version): packages[2].pkg.secfixes: "
            "not an apk version: 'not-a-version'",
            f"{tmp_path / 'v3.20-main.json'}: packages[3].pkg.name: missing",
        ]
    )


def test_debian_tracker(tmp_path: Path) -> None:
    doc = tracker(
        {
            "openssl": {
                "CVE-2024-0001": {
                    "bookworm": tracker_release("resolved", "3.0.13-1~deb12u1", "high"),
                    "bullseye": tracker_release("open", urgency="low**"),
                    "sid": tracker_release("resolved", "3.1.5-1"),
                },
                "CVE-2024-0002": {"bookworm": tracker_release("resolved", "0", "unimportant")},
            },
            "shadow": {
                "CVE-2024-0003": {
                    "bookworm": tracker_release("resolved", "1:4.13+dfsg1-1+deb12u1"),
                    "trixie": tracker_release("mystery"),
                },
                "CVE-2024-0004": {"bookworm": tracker_release("resolved")},
            },
        }
    )
    path = write_json(tmp_path / "tracker.json", doc)
    outcome = read_path(path)
    found = {
        a.id: sorted((str(e.stream), e.package, e.fixed, e.severity) for e in a.affected)
        for a in outcome.advisories
    }
    assert found == {
        "CVE-2024-0001": [
            ("debian 11", "openssl", None, (Severity("distro", "low**"),)),
            ("debian 12", "openssl", "3.0.13-1~deb12u1", (Severity("distro", "high"),)),
        ],
        "CVE-2024-0003": [
            ("debian 12", "shadow", "1:4.13+dfsg1-1+deb12u1", (Severity("distro", "medium"),))
        ],
    }
    assert sorted(str(s) for s in outcome.skipped) == [
        f"{path} (CVE-2024-0003 shadow): shadow.CVE-2024-0003.releases.trixie.status: "
        "unknown status 'mystery'",
        f"{path} (CVE-2024-0004 shadow): shadow.CVE-2024-0004.releases.bookworm.fixed_version: "
        "missing for a resolved issue",
    ]


def test_unreadable_inputs_never_raise(tmp_path: Path) -> None:
    (tmp_path / "empty.json").write_bytes(b"")
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 truncated")
    write_json(tmp_path / "other.json", {"hello": "world"})
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    outcome = read_paths(
        [
            tmp_path / "missing.json",
            tmp_path / "empty.json",
            tmp_path / "bad.zip",
            tmp_path / "other.json",
            tmp_path / "binary.json",
        ]
    )
    assert outcome.advisories == []
    reasons = {Path(s.where).name: s.reason for s in outcome.skipped}
    assert reasons["missing.json"] == "cannot read: No such file or directory"
    assert reasons["empty.json"].startswith("not JSON")
    assert reasons["binary.json"].startswith("not JSON")
    assert reasons["other.json"] == "not an OSV record, Alpine secdb or Debian tracker document"
    assert "bad.zip" in reasons
    assert len(outcome.skipped) == 5


def test_record_that_is_not_an_object(tmp_path: Path) -> None:
    outcome = read_path(write_json(tmp_path / "l.json", [osv("A-1", "Wolfi", "glibc"), "junk"]))
    assert [a.id for a in outcome.advisories] == ["A-1"]
    assert outcome.advisories[0].affected[0].stream == Stream("wolfi", "")
    assert [(s.where, s.field) for s in outcome.skipped] == [
        (f"{tmp_path / 'l.json'}[1]", "(record)")
    ]
    assert json.loads((tmp_path / "l.json").read_text())[1] == "junk"


def test_deeply_nested_json_is_skipped_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    outcome = read_path(path)
    assert [(s.field, s.reason) for s in outcome.skipped] == [
        ("(file)", "not JSON this reader takes: nested too deeply")
    ]
