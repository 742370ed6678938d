"""The scan queue in the database, on SQLite and PostgreSQL: the per-integration bound,
order, concurrent claimers never taking one scan twice, and the reaper."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select, update

from control_plane.db import Database
from control_plane.models import Scan, utcnow
from control_plane.queue import services as queue
from control_plane.scans.services import enqueue_scan
from tests.control_plane import flow_factories as f


async def _queued(db: Database, *, count: int, max_in_flight: int) -> list[Scan]:
    async with db.sessions() as session, session.begin():
        integ = await f.integration(session, max_in_flight=max_in_flight)
        scans = []
        for n in range(count):
            project = await f.project(session, integ, f"repo{n}", "1")
            scans.append(await enqueue_scan(session, project, priority=queue.PRIORITY_ADHOC))
    return scans


async def test_claims_stop_at_the_integrations_bound_until_a_scan_finishes(db: Database) -> None:
    scans = await _queued(db, count=5, max_in_flight=2)
    first = await queue.claim(db.sessions, "w1")
    assert [c.scan_id for c in first] == [s.id for s in scans[:2]]
    assert await queue.claim(db.sessions, "w2") == []
    async with db.sessions() as session, session.begin():
        assert await queue.mark_running(session, first[0].scan_id, "w1")
        await queue.fail(
            session, first[0].scan_id, step="manifest", error="gone", only_from=("running",)
        )
    again = await queue.claim(db.sessions, "w2")
    assert [c.scan_id for c in again] == [scans[2].id]
    assert again[0].image == "repo2:1" and again[0].attempts == 1


async def test_a_re_test_someone_asked_for_goes_before_scheduled_scans(db: Database) -> None:
    async with db.sessions() as session, session.begin():
        integ = await f.integration(session, max_in_flight=1)
        old = await f.project(session, integ, "scheduled", "1")
        new = await f.project(session, integ, "asked", "1")
        await enqueue_scan(session, old, reason="schedule", priority=queue.PRIORITY_SCHEDULED)
        asked = await enqueue_scan(session, new, reason="retest", priority=queue.PRIORITY_ADHOC)
    claimed = await queue.claim(db.sessions, "w")
    assert [c.scan_id for c in claimed] == [asked.id]


async def test_concurrent_claimers_never_take_the_same_scan(db: Database) -> None:
    scans = await _queued(db, count=40, max_in_flight=100)

    async def claimer(name: str) -> list[str]:
        got: list[str] = []
        for _ in range(10):
            got += [str(c.scan_id) for c in await queue.claim(db.sessions, name, limit=3)]
        return got

    results = await asyncio.gather(*(claimer(f"w{n}") for n in range(6)))
    taken = [scan for got in results for scan in got]
    assert len(taken) == len(set(taken)) == len(scans)
    async with db.sessions() as session:
        rows = (await session.execute(select(Scan.status, Scan.attempts))).all()
    assert {(status, attempts) for status, attempts in rows} == {("claimed", 1)}


async def test_a_dead_processs_claim_returns_to_the_queue_and_a_silent_agent_times_out(
    db: Database,
) -> None:
    scans = await _queued(db, count=2, max_in_flight=4)
    claimed = await queue.claim(db.sessions, "dead")
    async with db.sessions() as session, session.begin():
        await queue.mark_running(session, claimed[1].scan_id, "dead")
        long_ago = utcnow() - dt.timedelta(hours=2)
        await session.execute(update(Scan).values(claimed_at=long_ago, started_at=long_ago))
    requeued, timed_out = await queue.reap(db.sessions, claim_timeout=60, result_timeout=3600)
    assert (requeued, timed_out) == (1, 1)
    async with db.sessions() as session:
        first = await session.get(Scan, scans[0].id)
        second = await session.get(Scan, scans[1].id)
    assert first is not None and first.status == "queued" and first.claimed_by is None
    assert second is not None and second.status == "failed" and second.failed_step == "timeout"
    again = await queue.claim(db.sessions, "alive")
    assert [c.scan_id for c in again] == [scans[0].id] and again[0].attempts == 2


async def test_a_released_scan_waits_for_its_retry_time(db: Database) -> None:
    await _queued(db, count=1, max_in_flight=4)
    (claimed,) = await queue.claim(db.sessions, "w")
    async with db.sessions() as session, session.begin():
        later = utcnow() + dt.timedelta(minutes=5)
        await queue.release(session, claimed.scan_id, "w", retry_at=later, error="no client")
    assert await queue.claim(db.sessions, "w") == []
    async with db.sessions() as session:
        scan = await session.get(Scan, claimed.scan_id)
    assert scan is not None and scan.status == "queued" and scan.error == "no client"
