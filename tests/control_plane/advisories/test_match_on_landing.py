"""A scan result that lands is matched against the advisories in force right after it is
stored (SQLite and PostgreSQL); a failure to match never loses the result."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from control_plane.advisories.cli import import_paths, rematch
from control_plane.advisories.matching import IssueCounts
from control_plane.advisories.scan_issues import issue_counts
from control_plane.db import Database
from control_plane.models import Scan
from control_plane.queue.dispatch import seal
from control_plane.results import services as results
from control_plane.results.services import ingest_result
from cr_agent.sbom.cyclonedx import to_cyclonedx_json
from tests.control_plane import flow_factories as f
from tests.control_plane.advisories.test_scan_issues import DEBIAN_IMAGE, debian_feed
from tests.control_plane.test_result_ingest import _running_scan

SBOM = json.loads(to_cyclonedx_json(DEBIAN_IMAGE))


async def _land(db: Database, project_id: uuid.UUID | None, result_id: str) -> Scan:
    box = f.new_box()
    scan, _project = await _running_scan(db, project_id)
    body = f.result_body(str(scan.id), seal(box, scan.id), sbom=SBOM, result_id=result_id)
    outcome = await ingest_result(db.sessions, box, f.raw(body))
    assert outcome.status == 200 and outcome.body["stored"] is True
    return scan


async def _counts(db: Database, scan_id: uuid.UUID) -> IssueCounts | None:
    async with db.sessions() as session:
        found = (await issue_counts(session, [scan_id])).get(scan_id)
    return None if found is None else found.counts


async def test_a_landing_scan_is_matched_once_advisories_exist(
    db: Database, tmp_path: Path
) -> None:
    first = await _land(db, None, "r1")
    assert await _counts(db, first.id) is None  # no advisory imported yet: never matched

    await import_paths(db, [debian_feed(tmp_path)])
    await rematch(db)
    expected = IssueCounts(critical=1, high=2, fixable=2)
    assert await _counts(db, first.id) == expected

    # a retest lands after the import: matched as it is stored, no re-match needed
    second = await _land(db, first.project_id, "r2")
    assert await _counts(db, second.id) == expected


async def test_a_failure_to_match_keeps_the_result(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await import_paths(db, [debian_feed(tmp_path)])

    async def broken(*_args: object) -> None:
        raise RuntimeError("index unavailable")

    monkeypatch.setattr(results, "match_landed_scan", broken)
    scan = await _land(db, None, "r1")
    async with db.sessions() as session:
        stored = await session.get(Scan, scan.id)
    assert stored is not None and stored.status == "succeeded"
    assert await _counts(db, scan.id) is None
    # the next import's re-match picks it up
    await rematch(db)
    assert await _counts(db, scan.id) == IssueCounts(critical=1, high=2, fixable=2)
