"""The scan queue in the database, on SQLite and PostgreSQL: the per-integration bound,
order, concurrent claimers never taking one scan twice, and the reaper."""

from __future__ import annotations

import asyncio
import datetime as dt

import aiohttp
from sqlalchemy import select, update

from control_plane.db import Database
from control_plane.models import Integration, Scan, utcnow
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

    async def still_queued() -> int:
        async with db.sessions() as session:
            rows = await session.execute(select(Scan.id).where(Scan.status == "queued"))
            return len(rows.all())

    async def claimer(name: str) -> list[str]:
        # a claim that meets another's lock skips (SKIP LOCKED) and may come back empty while
        # scans remain: claim until none is queued (bounded), not a fixed number of times
        got: list[str] = []
        for _ in range(500):
            batch = await queue.claim(db.sessions, name, limit=3)
            got += [str(c.scan_id) for c in batch]
            if not batch:
                if not await still_queued():
                    break
                await asyncio.sleep(0.005)
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


async def test_queued_scans_of_a_deleted_integration_fail_instead_of_waiting_forever(
    db: Database,
) -> None:
    scans = await _queued(db, count=2, max_in_flight=4)
    async with db.sessions() as session, session.begin():
        integration = await session.get(Integration, scans[0].integration_id)
        assert integration is not None
        await session.delete(integration)
    assert await queue.claim(db.sessions, "w") == []
    assert await queue.reap(db.sessions, claim_timeout=60, result_timeout=60) == (0, 2)
    async with db.sessions() as session:
        rows = (await session.execute(select(Scan.status, Scan.failed_step))).all()
    assert {(status, step) for status, step in rows} == {("failed", "dispatch")}


async def test_a_hanging_agent_does_not_hold_the_dispatch_of_other_scans(db: Database) -> None:
    """Sends run beside the claim loop: with every earlier send hanging, new scans are still
    claimed and sent; closing the dispatcher cancels the hanging sends."""
    from control_plane.queue.dispatch import Dispatcher
    from control_plane.server_settings import ServerSettings

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts the request, never answers

    blackhole = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = blackhole.sockets[0].getsockname()[1]
    box = f.new_box()
    async with db.sessions() as session, session.begin():
        integ = await f.integration(session, max_in_flight=10)
        integ.broker_token_encrypted = box.encrypt(b"token-of-the-hanging-client")
        first = await enqueue_scan(session, await f.project(session, integ, "a", "1"))
    settings = ServerSettings(CRBROKER_WORKER_ID="w")
    dispatcher = Dispatcher(
        db.sessions, box, settings, broker_url=f"http://127.0.0.1:{port}", callback_base="x"
    )
    dispatcher._http = aiohttp.ClientSession()
    try:
        async with asyncio.timeout(5):
            assert await dispatcher.step()
        async with db.sessions() as session, session.begin():
            project = await f.project(session, integ, "b", "1")
            second = await enqueue_scan(session, project)
        async with asyncio.timeout(5):
            assert await dispatcher.step()
        assert len(dispatcher._sending) == 2
        async with db.sessions() as session:
            rows = dict((await session.execute(select(Scan.id, Scan.status))).all())
        assert rows == {first.id: "claimed", second.id: "claimed"}
    finally:
        await dispatcher.close()
        blackhole.close()
    assert not dispatcher._sending
