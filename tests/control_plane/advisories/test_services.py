"""Advisory import into the database (SQLite and PostgreSQL): incremental by ``modified`` or
content, counts, skipped records with reasons, and loading for matching."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from control_plane.advisories import cli
from control_plane.advisories.advisory_files import read_paths
from control_plane.advisories.cli import import_paths
from control_plane.advisories.inventory import Inventory, InventoryPackage
from control_plane.advisories.matching import AdvisoryIndex
from control_plane.advisories.records import Advisory
from control_plane.advisories.services import load_advisories
from control_plane.db import Database
from tests.control_plane.advisories import feeds


def _comparable(advisories: list[Advisory]) -> set[Advisory]:
    return {a._replace(affected=tuple(sorted(a.affected))) for a in advisories}


@pytest.fixture
def feed(tmp_path: Path) -> list[Path]:
    osv_zip = feeds.write_all_zip(
        tmp_path / "Debian" / "all.zip",
        [
            feeds.osv(
                "DSA-1-1", "Debian:12", "openssl", fixed="3.0.13-1~deb12u1", cvss=feeds.CVSS_HIGH
            ),
            feeds.osv("DEBIAN-CVE-2024-2", "Debian:12", "gcc-12", aliases=("CVE-2024-2",)),
            feeds.osv(
                "DSA-3-1", "Debian:12", "bash", fixed="5.2.15-3", withdrawn="2024-05-05T00:00:00Z"
            ),
        ],
        raw={"bad.json": b'{"id": "BAD-1", "modified": "2024-01-01T00:00:00Z", "affected": 5}'},
    )
    secdb = feeds.write_json(
        tmp_path / "v3.20-main.json",
        feeds.secdb("v3.20", {"openssl": {"3.3.1-r1": ["CVE-2024-5535"]}}),
    )
    secdb_old = feeds.write_json(
        tmp_path / "v3.19-main.json",
        feeds.secdb("v3.19", {"openssl": {"3.1.6-r1": ["CVE-2024-5535"]}}),
    )
    tracker = feeds.write_json(
        tmp_path / "tracker.json",
        feeds.tracker(
            {"shadow": {"CVE-2024-4": {"bookworm": feeds.tracker_release("open", urgency="low")}}}
        ),
    )
    return [osv_zip, secdb, secdb_old, tracker]


async def test_first_import_stores_everything_read(db: Database, feed: list[Path]) -> None:
    report = await import_paths(db, feed)
    assert (report.new, report.updated, report.withdrawn, report.unchanged) == (5, 0, 1, 0)
    assert [(s.where.rsplit("/", 1)[-1], s.field, s.reason) for s in report.skipped] == [
        ("all.zip:bad.json (BAD-1)", "affected", "expected a list, got int")
    ]
    async with db.sessions() as session:
        stored = await load_advisories(session)
    read = read_paths(feed).advisories
    assert _comparable(stored) == _comparable([a for a in read if a.withdrawn is None])
    # secdb's two releases keep their own copy of the CVE
    assert sorted(a.scope for a in stored if a.id == "CVE-2024-5535") == [
        "alpine 3.19 main",
        "alpine 3.20 main",
    ]


async def test_second_import_of_the_same_files_changes_nothing(
    db: Database, feed: list[Path]
) -> None:
    await import_paths(db, feed)
    again = await import_paths(db, feed)
    assert (again.new, again.updated, again.withdrawn, again.unchanged) == (0, 0, 0, 6)
    assert not again.changed


async def test_newer_modified_updates_older_is_ignored_and_withdrawal_counts(
    db: Database, feed: list[Path], tmp_path: Path
) -> None:
    await import_paths(db, feed)
    newer = feeds.osv(
        "DSA-1-1", "Debian:12", "openssl", fixed="3.0.14-1~deb12u1", modified="2024-06-01T00:00:00Z"
    )
    older = feeds.osv(
        "DEBIAN-CVE-2024-2",
        "Debian:12",
        "gcc-12",
        fixed="12.2.0-15",
        modified="2023-01-01T00:00:00Z",
    )
    withdrawn = feeds.osv(
        "DEBIAN-CVE-2024-2",
        "Debian:12",
        "gcc-12",
        modified="2024-07-01T00:00:00Z",
        withdrawn="2024-07-01T00:00:00Z",
    )
    report = await import_paths(db, [feeds.write_json(tmp_path / "u.json", [newer, older])])
    assert (report.new, report.updated, report.withdrawn, report.unchanged) == (0, 1, 0, 1)
    report = await import_paths(db, [feeds.write_json(tmp_path / "w.json", withdrawn)])
    assert (report.updated, report.withdrawn) == (0, 1)
    async with db.sessions() as session:
        stored = {a.id: a for a in await load_advisories(session)}
    assert stored["DSA-1-1"].affected[0].fixed == "3.0.14-1~deb12u1"
    assert stored["DSA-1-1"].modified == "2024-06-01T00:00:00Z"
    assert "DEBIAN-CVE-2024-2" not in stored


async def test_formats_without_modified_update_when_content_changes(
    db: Database, feed: list[Path], tmp_path: Path
) -> None:
    await import_paths(db, feed)
    changed = feeds.write_json(
        tmp_path / "tracker2.json",
        feeds.tracker(
            {
                "shadow": {
                    "CVE-2024-4": {
                        "bookworm": feeds.tracker_release(
                            "resolved", "1:4.13+dfsg1-1+deb12u1", "low"
                        )
                    }
                }
            }
        ),
    )
    report = await import_paths(db, [changed])
    assert (report.new, report.updated, report.unchanged) == (0, 1, 0)
    async with db.sessions() as session:
        stored = {a.id: a for a in await load_advisories(session)}
    assert stored["CVE-2024-4"].affected[0].fixed == "1:4.13+dfsg1-1+deb12u1"


async def test_the_same_record_twice_in_one_import(db: Database, tmp_path: Path) -> None:
    first = feeds.osv("DSA-9-1", "Debian:12", "curl", fixed="7.88.1-10+deb12u6")
    second = feeds.osv(
        "DSA-9-1", "Debian:12", "curl", fixed="7.88.1-10+deb12u7", modified="2024-08-01T00:00:00Z"
    )
    report = await import_paths(db, [feeds.write_json(tmp_path / "d.json", [second, first])])
    assert report.new == 1
    assert [(s.where, s.reason) for s in report.skipped] == [
        ("osv DSA-9-1", "another copy in this import is as new or newer")
    ]
    async with db.sessions() as session:
        [stored] = await load_advisories(session)
    assert stored.affected[0].fixed == "7.88.1-10+deb12u7"


async def test_stored_inventory_shows_the_issue_after_the_import_without_a_rescan(
    db: Database, feed: list[Path]
) -> None:
    stored_inventory = Inventory(
        "debian",
        "12",
        (
            InventoryPackage(
                "deb", "libssl3", "3.0.11-1~deb12u2", "openssl", "3.0.11-1~deb12u2", 0
            ),
            InventoryPackage("deb", "login", "1:4.13+dfsg1-1", "shadow", "1:4.13+dfsg1-1", 1),
        ),
    )
    async with db.sessions() as session:
        before = AdvisoryIndex(await load_advisories(session)).match(stored_inventory)
    assert before.issues == ()
    await import_paths(db, feed)
    async with db.sessions() as session:
        after = AdvisoryIndex(await load_advisories(session)).match(stored_inventory)
    assert sorted((i.package_name, i.advisory_id, i.severity) for i in after.issues) == [
        ("libssl3", "DSA-1-1", "high"),
        ("login", "CVE-2024-4", "low"),
    ]


def test_cli_import(tmp_path: Path, feed: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cp.db'}")
    out, err = io.StringIO(), io.StringIO()
    assert cli.run(["import", *map(str, feed)], out=out, err=err) == 0
    assert out.getvalue() == (
        "advisories: 5 new, 0 updated, 1 withdrawn, 0 unchanged, 1 skipped\n"
        "re-matched 0 latest scans: 0 issues\n"
    )
    assert "bad.json (BAD-1): affected: expected a list, got int" in err.getvalue()
    out, err = io.StringIO(), io.StringIO()
    junk = tmp_path / "junk.json"
    junk.write_text("[}")
    assert cli.run(["import", str(junk), str(tmp_path / "missing.zip")], out=out, err=err) == 1
    assert out.getvalue() == "advisories: 0 new, 0 updated, 0 withdrawn, 0 unchanged, 2 skipped\n"
    assert "missing.zip: (file): cannot read: No such file or directory" in err.getvalue()


def test_cli_bad_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://somewhere/db")
    err = io.StringIO()
    assert cli.run(["import", "x.json"], out=io.StringIO(), err=err) == 2
    assert err.getvalue() == (
        "crbroker-server: DATABASE_URL: must be a postgresql:// or sqlite:// URL\n"
    )


def test_cli_unreachable_database_names_it_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgresql://crbroker:s3cret-db-pass@127.0.0.1:{port}/cp")
    feed = feeds.write_json(tmp_path / "a.json", feeds.osv("A-1", "Debian:12", "bash"))
    err = io.StringIO()
    assert cli.run(["import", str(feed)], out=io.StringIO(), err=err) == 2
    text = err.getvalue()
    assert text.startswith(
        f"crbroker-server: database postgresql+asyncpg://crbroker:***@127.0.0.1:{port}/cp: "
    )
    assert "s3cret-db-pass" not in text
