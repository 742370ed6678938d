"""Stored scans matched when they land and again after an import, from their stored SBOM
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.advisories.cli import import_paths, rematch
from control_plane.advisories.index_cache import IndexCache
from control_plane.advisories.inventory import inventory_from_cyclonedx
from control_plane.advisories.matching import AdvisoryIndex, IssueCounts
from control_plane.advisories.models import ScanInventory
from control_plane.advisories.scan_issues import (
    issue_counts,
    list_scan_issues,
    match_scan,
    stored_inventory,
    unpack_inventory,
)
from control_plane.advisories.services import load_advisories
from control_plane.db import Database
from control_plane.models import Org, Project
from control_plane.pagination import PageRequest
from control_plane.projects.services import delete_project, import_project
from control_plane.scans.services import ScanOutcome, enqueue_scan, record_success
from control_plane.targets.services import get_or_create_target
from cr_agent.catalogers.base import Distro
from cr_agent.sbom.cyclonedx import to_cyclonedx_json
from tests.control_plane import factories
from tests.control_plane.advisories import feeds
from tests.control_plane.advisories.scans import dpkg_packages, scan_result

DEBIAN_IMAGE = scan_result(
    Distro("debian", "12"),
    [
        dpkg_packages(
            {"Package": "libssl3", "Source": "openssl", "Version": "3.0.11-1~deb12u2"},
            {"Package": "login", "Version": "1:4.13+dfsg1-1", "Source": "shadow"},
        ),
        dpkg_packages({"Package": "openssl", "Version": "3.0.11-1~deb12u2"}),
    ],
)


async def landed_scan(session: AsyncSession, org: Org, repository: str, sbom: bytes) -> Project:
    target = await get_or_create_target(session, org.id, None, repository)
    project = await import_project(session, target, "latest", integration=None, importer_id=None)
    assert project is not None
    scan = await enqueue_scan(session, project)
    await record_success(
        session,
        scan.id,
        ScanOutcome(
            image_digest=DEBIAN_IMAGE.digest,
            platform="linux/amd64",
            package_type="deb",
            package_count=3,
            sboms={"cyclonedx": sbom},
        ),
    )
    return project


def debian_feed(tmp_path: Path) -> Path:
    return feeds.write_json(
        tmp_path / "feed.json",
        [
            feeds.osv(
                "DSA-1-1", "Debian:12", "openssl", fixed="3.0.13-1~deb12u1", cvss=feeds.CVSS_HIGH
            ),
            feeds.osv("DEBIAN-CVE-2024-2", "Debian:12", "shadow", cvss=feeds.CVSS_CRITICAL),
        ],
    )


async def test_scan_shows_issues_after_an_import_without_a_rescan(
    db: Database, tmp_path: Path
) -> None:
    async with db.sessions() as session, session.begin():
        org = (await factories.account(session)).org
        project = await landed_scan(
            session, org, "library/app", to_cyclonedx_json(DEBIAN_IMAGE).encode()
        )
        broken = await landed_scan(session, org, "library/broken", b"\x28\xb5 not an sbom")
        gone = await landed_scan(
            session, org, "library/gone", to_cyclonedx_json(DEBIAN_IMAGE).encode()
        )
        await delete_project(session, org.id, gone.id)
        scan_id = project.latest_scan_id
        assert scan_id is not None
        # the scan lands before any advisory is known: no issues
        landed = await match_scan(session, AdvisoryIndex([]), scan_id)
        assert landed is not None and landed.issues == ()
    async with db.sessions() as session:
        assert (await issue_counts(session, [scan_id]))[scan_id].counts == IssueCounts()

    report = await import_paths(db, [debian_feed(tmp_path)])
    assert report.changed
    rematched = await rematch(db)
    assert (rematched.scans, rematched.issues, rematched.unreadable) == (1, 3, 1)

    async with db.sessions() as session:
        counts = await issue_counts(session, [scan_id, broken.latest_scan_id or scan_id])
        assert counts[scan_id].counts == IssueCounts(critical=1, high=2, fixable=2)
        assert broken.latest_scan_id not in counts


async def test_issue_details_come_from_the_stored_sbom(db: Database, tmp_path: Path) -> None:
    async with db.sessions() as session, session.begin():
        org = (await factories.account(session)).org
        project = await landed_scan(
            session, org, "library/app", to_cyclonedx_json(DEBIAN_IMAGE).encode()
        )
    await import_paths(db, [debian_feed(tmp_path)])
    async with db.sessions() as session, session.begin():
        index = AdvisoryIndex(await load_advisories(session))
        assert project.latest_scan_id is not None
        result = await match_scan(session, index, project.latest_scan_id)
    assert result is not None
    found = sorted(
        (i.package_name, i.advisory_id, i.fixed_version, i.severity, i.layer_index)
        for i in result.issues
    )
    assert found == [
        ("libssl3", "DSA-1-1", "3.0.13-1~deb12u1", "high", 0),
        ("login", "DEBIAN-CVE-2024-2", None, "critical", 0),
        ("openssl", "DSA-1-1", "3.0.13-1~deb12u1", "high", 1),
    ]
    assert all(i.package_ref and i.package_ref.startswith("pkg:") for i in result.issues)


async def test_inventory_is_read_from_the_sbom_once_and_kept_compact(db: Database) -> None:
    sbom = to_cyclonedx_json(DEBIAN_IMAGE).encode()
    async with db.sessions() as session, session.begin():
        org = (await factories.account(session)).org
        project = await landed_scan(session, org, "library/app", sbom)
        scan_id = project.latest_scan_id
        assert scan_id is not None
        first = await stored_inventory(session, scan_id)
    assert first == inventory_from_cyclonedx(json.loads(sbom))
    async with db.sessions() as session, session.begin():
        kept = await session.get(ScanInventory, scan_id)
        assert kept is not None and len(kept.content) < len(sbom) / 4
        assert unpack_inventory(kept.content) == first
        kept.content = b"garbage"  # a damaged copy: read from the SBOM again, and replaced
    async with db.sessions() as session, session.begin():
        assert await stored_inventory(session, scan_id) == first
    async with db.sessions() as session:
        kept = await session.get(ScanInventory, scan_id)
        assert kept is not None and unpack_inventory(kept.content) == first


async def test_index_cache_rebuilds_only_when_advisories_change(
    db: Database, tmp_path: Path
) -> None:
    cache = IndexCache()
    async with db.sessions() as session:
        empty = await cache.get(session)
        assert await cache.get(session) is empty and cache.builds == 1
    await import_paths(db, [debian_feed(tmp_path)])
    async with db.sessions() as session:
        loaded = await cache.get(session)
        assert loaded is not empty and loaded.advisory_count == 2 and cache.builds == 2
    await import_paths(db, [debian_feed(tmp_path)])  # nothing changed
    withdrawn = feeds.osv(
        "DSA-1-1",
        "Debian:12",
        "openssl",
        modified="2024-09-01T00:00:00Z",
        withdrawn="2024-09-01T00:00:00Z",
    )
    async with db.sessions() as session:
        assert await cache.get(session) is loaded and cache.builds == 2
    await import_paths(db, [feeds.write_json(tmp_path / "w.json", withdrawn)])
    async with db.sessions() as session:
        assert (await cache.get(session)).advisory_count == 1 and cache.builds == 3


async def test_issue_pages_with_stable_ids(db: Database, tmp_path: Path) -> None:
    async with db.sessions() as session, session.begin():
        org = (await factories.account(session)).org
        project = await landed_scan(
            session, org, "library/app", to_cyclonedx_json(DEBIAN_IMAGE).encode()
        )
    scan_id = project.latest_scan_id
    assert scan_id is not None
    await import_paths(db, [debian_feed(tmp_path)])
    cache = IndexCache()
    async with db.sessions() as session, session.begin():
        index = await cache.get(session)
        first = await list_scan_issues(session, index, scan_id, PageRequest(limit=2))
        rest = await list_scan_issues(
            session, index, scan_id, PageRequest(limit=2, starting_after=first.items[-1].id)
        )
        back = await list_scan_issues(
            session, index, scan_id, PageRequest(limit=2, ending_before=rest.items[0].id)
        )
        critical = await list_scan_issues(
            session, index, scan_id, PageRequest(limit=10), severities={"critical"}
        )
    assert (len(first.items), first.has_next, first.has_prev) == (2, True, False)
    assert (len(rest.items), rest.has_next, rest.has_prev) == (1, False, True)
    assert [i.id for i in back.items] == [i.id for i in first.items] and not back.has_prev
    every = [*first.items, *rest.items]
    assert sorted((i.issue.package_name, i.issue.advisory_id) for i in every) == [
        ("libssl3", "DSA-1-1"),
        ("login", "DEBIAN-CVE-2024-2"),
        ("openssl", "DSA-1-1"),
    ]
    assert [i.issue.package_name for i in critical.items] == ["login"]
    # an issue keeps its id from one request to the next
    async with db.sessions() as session, session.begin():
        again = await list_scan_issues(
            session, await cache.get(session), scan_id, PageRequest(limit=10)
        )
    assert [i.id for i in again.items] == [i.id for i in every]
