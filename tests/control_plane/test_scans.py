"""Scan history and the visible result, through the domain services (both databases)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from control_plane.db import Database
from control_plane.encryption import SecretBox
from control_plane.errors import NotFound
from control_plane.models import Scan, ScanSbom
from control_plane.pagination import PageRequest
from control_plane.projects.services import delete_project, get_project, import_project
from control_plane.scans.services import (
    ScanOutcome,
    enqueue_scan,
    latest_sbom,
    record_failure,
    record_success,
    scan_history,
)
from control_plane.targets.services import get_or_create_target
from tests.control_plane import factories


def _outcome(digest: str, packages: int, key: str | None = None, kind: str = "deb") -> ScanOutcome:
    return ScanOutcome(
        image_digest=digest,
        platform="linux/arm64",
        package_type=kind,
        package_count=packages,
        duration_ms=90,
        sboms={
            "cyclonedx": factories.cyclonedx(digest, packages),
            "spdx": json.dumps({"spdxVersion": "SPDX-2.3", "name": digest}).encode(),
        },
        idempotency_key=key,
    )


async def test_previous_result_stays_visible_until_a_new_one_lands(
    db: Database, box: SecretBox
) -> None:
    async with db.sessions() as session, session.begin():
        acct, _hub, project = await factories.project_in_new_org(session, box, package_count=5)
        first = await latest_sbom(session, project, "cyclonedx")
        # a re-test is queued, then fails: the project still shows the first result
        retest = await enqueue_scan(session, project, reason="retest")
        await record_failure(
            session, retest.id, error="registry answered 503", failed_step="manifest"
        )
        await session.refresh(project)
        assert (project.dependency_total, project.latest_scan_id) == (5, first.scan_id)
        assert (await latest_sbom(session, project, "cyclonedx")).content == first.content
        # a second re-test succeeds: now it is the visible one
        second = await enqueue_scan(session, project, reason="retest")
        await record_success(session, second.id, _outcome("sha256:" + "b" * 64, 7))
        await session.refresh(project)
        assert project.latest_scan_id == second.id
        assert project.dependency_total == 7
        assert project.image_digest == "sha256:" + "b" * 64
        spdx = await latest_sbom(session, project, "spdx")
        assert json.loads(spdx.content)["name"] == "sha256:" + "b" * 64
        history = await scan_history(session, acct.org.id, project.id, PageRequest(limit=10))
        assert [s.status for s in history.items] == ["succeeded", "failed", "succeeded"]
        assert history.items[1].failed_step == "manifest"


async def test_an_older_scan_landing_late_does_not_hide_a_newer_result(
    db: Database, box: SecretBox
) -> None:
    async with db.sessions() as session, session.begin():
        _acct, _hub, project = await factories.project_in_new_org(session, box, package_type=None)
        older = await enqueue_scan(session, project)
        newer = await enqueue_scan(session, project)
        await record_success(session, newer.id, _outcome("sha256:" + "2" * 64, 20))
        await record_success(session, older.id, _outcome("sha256:" + "1" * 64, 10))
        await session.refresh(project)
        assert project.latest_scan_id == newer.id
        assert project.dependency_total == 20


async def test_a_result_arriving_twice_is_stored_once(db: Database, box: SecretBox) -> None:
    async with db.sessions() as session, session.begin():
        _acct, _hub, project = await factories.project_in_new_org(session, box, package_type=None)
        scan = await enqueue_scan(session, project)
        first = await record_success(
            session, scan.id, _outcome("sha256:" + "3" * 64, 3, key="agent-key-1")
        )
        again = await record_success(
            session, scan.id, _outcome("sha256:" + "3" * 64, 3, key="agent-key-1")
        )
        assert again.id == first.id
        sboms = await session.scalar(
            select(func.count()).select_from(ScanSbom).where(ScanSbom.scan_id == scan.id)
        )
        assert sboms == 2
        stored = await session.get(ScanSbom, (await session.scalars(select(ScanSbom.id))).first())
        assert (
            stored is not None
            and stored.compression == "zstd"
            and len(stored.content) < stored.size
        )


async def test_a_deleted_project_is_a_tombstone_that_automatic_imports_skip(
    db: Database, box: SecretBox
) -> None:
    async with db.sessions() as session, session.begin():
        acct, hub, project = await factories.project_in_new_org(session, box)
        await delete_project(session, acct.org.id, project.id)
        target = await get_or_create_target(session, acct.org.id, hub, "app")
        skipped = await import_project(
            session, target, "1", integration=hub, importer_id=None, automatic=True
        )
        assert skipped is None
        with pytest.raises(NotFound):
            await get_project(session, acct.org.id, project.id)
        # the scans stay in the history
        assert (
            await session.scalar(
                select(func.count()).select_from(Scan).where(Scan.project_id == project.id)
            )
            == 1
        )
        revived = await import_project(
            session, target, "1", integration=hub, importer_id=acct.user.id
        )
        assert revived is not None and revived.id == project.id and revived.deleted_at is None
