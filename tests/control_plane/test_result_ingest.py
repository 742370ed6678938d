"""Agent callbacks stored on SQLite and PostgreSQL: SBOMs compressed in both formats, the
project's type and digest, a result stored once, chunks joined, failures kept apart."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import func, select

from control_plane.db import Database
from control_plane.models import Project, ResultChunk, Scan, ScanSbom
from control_plane.queue import services as queue
from control_plane.queue.dispatch import seal
from control_plane.results import sbom_documents as docs
from control_plane.results.services import ingest_done, ingest_result
from control_plane.scans.services import enqueue_scan
from tests.control_plane import flow_factories as f

DEB = [("deb", "libc6", "2.36"), ("deb", "bash", "5.2"), ("deb", "zlib1g", "1.2")]
APK = [("apk", "musl", "1.2.4"), ("apk", "busybox", "1.36")]


async def _running_scan(db: Database, project_id: uuid.UUID | None = None) -> tuple[Scan, Project]:
    async with db.sessions() as session, session.begin():
        if project_id is None:
            integ = await f.integration(session)
            project = await f.project(session, integ, "app", "1")
        else:
            found = await session.get(Project, project_id)
            assert found is not None
            project = found
        scan = await enqueue_scan(session, project, reason="retest")
    (claimed,) = await queue.claim(db.sessions, "w")
    async with db.sessions() as session, session.begin():
        assert await queue.mark_running(session, claimed.scan_id, "w")
    return scan, project


async def _project(db: Database, project_id: uuid.UUID) -> Project:
    async with db.sessions() as session:
        found = await session.get(Project, project_id)
    assert found is not None
    return found


async def _scan(db: Database, scan_id: uuid.UUID) -> Scan:
    async with db.sessions() as session:
        found = await session.get(Scan, scan_id)
    assert found is not None
    return found


async def test_a_result_stores_both_sboms_and_updates_the_project(db: Database) -> None:
    box = f.new_box()
    scan, project = await _running_scan(db)
    sbom = f.cyclonedx(DEB)
    body = f.result_body(str(scan.id), seal(box, scan.id), sbom=sbom, result_id="r1")
    outcome = await ingest_result(db.sessions, box, f.raw(body))
    assert outcome.status == 200 and outcome.body["stored"] is True
    stored = await _scan(db, scan.id)
    assert stored.status == "succeeded" and stored.package_type == "deb"
    assert stored.package_count == 3 and stored.duration_ms is not None
    assert stored.image_digest == body["digest"] and stored.idempotency_key == "r1"
    shown = await _project(db, project.id)
    assert (shown.type, shown.image_digest, shown.platform) == (
        "deb",
        body["digest"],
        "linux/amd64",
    )
    assert shown.latest_scan_id == scan.id and shown.dependency_total == 3
    async with db.sessions() as session:
        sboms = {s.format: s for s in await session.scalars(select(ScanSbom))}
    assert set(sboms) == {"cyclonedx", "spdx"}
    assert json.loads(docs.decompress(sboms["cyclonedx"].content)) == sbom
    assert sboms["cyclonedx"].size > len(sboms["cyclonedx"].content)
    spdx = json.loads(docs.decompress(sboms["spdx"].content))
    purls = {ref["referenceLocator"] for p in spdx["packages"] for ref in p.get("externalRefs", [])}
    assert purls == {c["purl"] for c in sbom["components"] if "purl" in c}


async def test_the_same_result_twice_is_stored_once(db: Database) -> None:
    box = f.new_box()
    scan, _ = await _running_scan(db)
    body = f.raw(
        f.result_body(str(scan.id), seal(box, scan.id), sbom=f.cyclonedx(DEB), result_id="r")
    )
    first = await ingest_result(db.sessions, box, body)
    second = await ingest_result(db.sessions, box, body)
    assert first.body["stored"] is True
    assert second.status == 200 and second.body == {
        "stored": False,
        "duplicate": True,
        "scan": str(scan.id),
    }
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ScanSbom)) == 2


async def test_a_failed_rescan_keeps_the_previous_result_visible(db: Database) -> None:
    box = f.new_box()
    scan, project = await _running_scan(db)
    ok = f.result_body(str(scan.id), seal(box, scan.id), sbom=f.cyclonedx(APK), result_id="a")
    await ingest_result(db.sessions, box, f.raw(ok))
    again, _ = await _running_scan(db, project.id)
    error = {"code": "manifest-unknown", "message": "no such tag", "step": "manifest"}
    failed = f.result_body(
        str(again.id), seal(box, again.id), sbom=None, result_id="b", error=error
    )
    assert (await ingest_result(db.sessions, box, f.raw(failed))).status == 200
    stored = await _scan(db, again.id)
    assert (stored.status, stored.failed_step, stored.error) == (
        "failed",
        "manifest",
        "no such tag",
    )
    shown = await _project(db, project.id)
    assert shown.latest_scan_id == scan.id and shown.type == "apk"


async def test_an_image_without_a_package_manager_is_linux(db: Database) -> None:
    box = f.new_box()
    scan, project = await _running_scan(db)
    body = f.result_body(str(scan.id), seal(box, scan.id), sbom=f.cyclonedx([]), result_id="s")
    await ingest_result(db.sessions, box, f.raw(body))
    assert (await _project(db, project.id)).type == "linux"


async def test_chunks_are_joined_once_all_have_arrived_in_any_order(db: Database) -> None:
    box = f.new_box()
    scan, project = await _running_scan(db)
    sbom = f.cyclonedx(DEB)
    components = sbom["components"]
    parts = [components[:2], components[2:3], components[3:]]
    bodies = []
    for index, part in enumerate(parts):
        piece = {**sbom, "components": part}
        chunk = {"index": index, "count": 3, "fields": ["components"]}
        bodies.append(
            f.raw(
                f.result_body(
                    str(scan.id), seal(box, scan.id), sbom=piece, result_id="big", chunk=chunk
                )
            )
        )
    assert (await ingest_result(db.sessions, box, bodies[2])).status == 202
    assert (await ingest_result(db.sessions, box, bodies[0])).status == 202
    assert (await ingest_result(db.sessions, box, bodies[0])).status == 202  # a retry
    assert (await _scan(db, scan.id)).status == "running"
    last = await ingest_result(db.sessions, box, bodies[1])
    assert last.status == 200 and last.body["stored"] is True
    async with db.sessions() as session:
        cdx = await session.scalar(select(ScanSbom).where(ScanSbom.format == "cyclonedx"))
        left = await session.scalar(select(func.count()).select_from(ResultChunk))
    assert cdx is not None and json.loads(docs.decompress(cdx.content)) == sbom
    assert left == 0
    assert (await _project(db, project.id)).type == "deb"


async def test_a_callback_without_the_scans_ticket_is_refused_and_changes_nothing(
    db: Database,
) -> None:
    box = f.new_box()
    scan, project = await _running_scan(db)
    forged = f.result_body(
        str(scan.id), seal(f.new_box(), scan.id), sbom=f.cyclonedx(DEB), result_id="x"
    )
    outcome = await ingest_result(db.sessions, box, f.raw(forged))
    assert outcome.status == 403 and "ticket" in outcome.body["message"]
    missing = {k: v for k, v in forged.items() if k != "context"}
    assert (await ingest_result(db.sessions, box, f.raw(missing))).status == 403
    bad = await ingest_result(db.sessions, box, b'{"jobId": 1}')
    assert bad.status == 400 and "jobId" in bad.body["message"]
    assert (await _scan(db, scan.id)).status == "running"
    assert (await _project(db, project.id)).type is None


async def test_a_job_done_without_the_images_result_fails_the_scan_at_callback(
    db: Database,
) -> None:
    box = f.new_box()
    scan, _ = await _running_scan(db)
    done = {
        "jobId": "j",
        "status": "failed",
        "context": {"scan": str(scan.id), "ticket": seal(box, scan.id)},
    }
    assert (await ingest_done(db.sessions, box, f.raw(done))).status == 200
    stored = await _scan(db, scan.id)
    assert (stored.status, stored.failed_step) == ("failed", "callback")
