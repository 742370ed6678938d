"""The scan queue: the ``scans`` table itself, claimed row by row by any number of processes.

A scan's life: ``queued`` -> ``claimed`` (one control-plane process took it) -> ``running``
(an agent accepted it) -> ``succeeded`` | ``failed``. Nothing about the queue lives in
process memory, so several control-plane replicas on one PostgreSQL drain it together and
a restarted process loses nothing.

Each integration has a bound on scans in flight (``integrations.max_in_flight``, counting
``claimed`` and ``running``). A claim must see the count and take rows as one step:

- PostgreSQL: the integration's row is locked ``FOR UPDATE SKIP LOCKED`` (one claimer per
  integration at a time; the others move on to other integrations), then the free places
  are filled with queued rows taken ``FOR UPDATE SKIP LOCKED``.
- SQLite: one conditional ``UPDATE ... WHERE id IN (SELECT ... LIMIT <free places>)``; SQLite
  runs a statement under its single write lock, so count and claim cannot interleave.

Order inside an integration: higher ``priority`` first (a re-test a user asked for before
scheduled work), then oldest first (ids grow with time). Scheduled scans (priority below
``PRIORITY_ADHOC``: a registry sync's) are a lane with its own bound,
:func:`scheduled_bound` of the integration's, so a big sync never holds every place and an
ad-hoc scan always finds one soon.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Update, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.models import Integration, Project, Scan, Target, utcnow

IN_FLIGHT = ("claimed", "running")
FINISHED = ("succeeded", "failed")

#: priorities: what a person asked for goes before what a schedule asked for
PRIORITY_ADHOC = 10
PRIORITY_SCHEDULED = 0


def scheduled_bound(bound: int) -> int:
    """Scheduled scans of an integration in flight at most: half its bound (at least one)."""
    return max(1, bound // 2)


def _scheduled(flag: bool) -> ColumnElement[bool]:
    return Scan.priority < PRIORITY_ADHOC if flag else Scan.priority >= PRIORITY_ADHOC


@dataclass(frozen=True)
class Claimed:
    """A claimed scan with what dispatching it needs (no secret decrypted yet)."""

    scan_id: uuid.UUID
    org_id: uuid.UUID
    project_id: uuid.UUID
    integration_id: uuid.UUID
    image: str
    attempts: int
    repository: str = ""


def _ready(now: dt.datetime) -> ColumnElement[bool]:
    return and_(Scan.status == "queued", or_(Scan.run_after.is_(None), Scan.run_after <= now))


async def _integrations_with_work(session: AsyncSession, now: dt.datetime) -> list[uuid.UUID]:
    rows = await session.execute(
        select(Scan.integration_id)
        .where(_ready(now), Scan.integration_id.is_not(None))
        .group_by(Scan.integration_id)
        .order_by(func.min(Scan.requested_at))
    )
    return [r[0] for r in rows if r[0] is not None]


async def claim(
    sessions: async_sessionmaker[AsyncSession], worker: str, *, limit: int = 50
) -> list[Claimed]:
    """Take up to ``limit`` queued scans for ``worker``, each integration within its bound."""
    now = utcnow()
    async with sessions() as session:
        integrations = await _integrations_with_work(session, now)
    taken: list[Claimed] = []
    for integration_id in integrations:
        if len(taken) >= limit:
            break
        async with sessions() as session, session.begin():
            if _dialect(session) == "postgresql":
                ids = await _claim_postgres(
                    session, integration_id, worker, now, limit - len(taken)
                )
            else:
                ids = await _claim_sqlite(session, integration_id, worker, now, limit - len(taken))
            if ids:
                taken += await _describe(session, ids)
    return taken


async def _claim_postgres(
    session: AsyncSession, integration_id: uuid.UUID, worker: str, now: dt.datetime, limit: int
) -> list[uuid.UUID]:
    bound = await session.scalar(
        select(Integration.max_in_flight)
        .where(Integration.id == integration_id, Integration.is_active.is_(True))
        .with_for_update(skip_locked=True)
    )
    if bound is None:
        return []  # another process is claiming for it right now, or it is inactive
    in_flight = and_(Scan.integration_id == integration_id, Scan.status.in_(IN_FLIGHT))
    busy = await session.scalar(select(func.count()).select_from(Scan).where(in_flight))
    busy_scheduled = await session.scalar(
        select(func.count()).select_from(Scan).where(in_flight, _scheduled(True))
    )
    free = min(limit, bound - (busy or 0))
    ids: list[uuid.UUID] = []
    for scheduled in (False, True):
        places = free - len(ids)
        if scheduled:
            places = min(places, scheduled_bound(bound) - (busy_scheduled or 0))
        if places <= 0:
            continue
        ids += await session.scalars(
            select(Scan.id)
            .where(Scan.integration_id == integration_id, _ready(now), _scheduled(scheduled))
            .order_by(Scan.priority.desc(), Scan.id)
            .limit(places)
            .with_for_update(skip_locked=True)
        )
    if ids:
        await session.execute(_claim_update(worker, now).where(Scan.id.in_(ids)))
    return ids


async def _claim_sqlite(
    session: AsyncSession, integration_id: uuid.UUID, worker: str, now: dt.datetime, limit: int
) -> list[uuid.UUID]:
    # each statement counts and claims at once under SQLite's write lock: first the ad-hoc
    # lane, then the scheduled lane within its own bound
    in_flight = and_(Scan.integration_id == integration_id, Scan.status.in_(IN_FLIGHT))
    busy = select(func.count()).select_from(Scan).where(in_flight).scalar_subquery()
    busy_scheduled = (
        select(func.count()).select_from(Scan).where(in_flight, _scheduled(True)).scalar_subquery()
    )
    bound = func.coalesce(
        select(Integration.max_in_flight)
        .where(Integration.id == integration_id, Integration.is_active.is_(True))
        .scalar_subquery(),
        0,
    )
    ids: list[uuid.UUID] = []
    for scheduled in (False, True):
        free = func.min(limit - len(ids), func.max(0, bound - busy))
        if scheduled:
            lane = func.max(1, bound.op("/")(2))  # scheduled_bound, in SQL
            free = func.min(free, func.max(0, lane - busy_scheduled))
        chosen = (
            select(Scan.id)
            .where(Scan.integration_id == integration_id, _ready(now), _scheduled(scheduled))
            .order_by(Scan.priority.desc(), Scan.id)
            .limit(free)
        )
        result = await session.execute(
            _claim_update(worker, now).where(Scan.id.in_(chosen)).returning(Scan.id)
        )
        ids += [r[0] for r in result]
    return ids


def _claim_update(worker: str, now: dt.datetime) -> Update:
    return (
        update(Scan)
        .values(status="claimed", claimed_by=worker, claimed_at=now, attempts=Scan.attempts + 1)
        .execution_options(synchronize_session=False)
    )


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def _describe(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[Claimed]:
    rows = await session.execute(
        select(
            Scan.id,
            Scan.org_id,
            Scan.project_id,
            Scan.integration_id,
            Scan.attempts,
            Project.name,
            Target.repository,
        )
        .join(Project, Project.id == Scan.project_id)
        .join(Target, Target.id == Project.target_id)
        .where(Scan.id.in_(ids))
        .order_by(Scan.priority.desc(), Scan.id)
    )
    return [
        Claimed(
            scan_id=r[0],
            org_id=r[1],
            project_id=r[2],
            integration_id=r[3] or uuid.UUID(int=0),
            attempts=r[4],
            image=r[5],
            repository=r[6],
        )
        for r in rows
    ]


async def mark_running(session: AsyncSession, scan_id: uuid.UUID, worker: str) -> bool:
    """The agent accepted the scan; False if this worker no longer holds the claim."""
    result = await session.execute(
        update(Scan)
        .where(Scan.id == scan_id, Scan.status == "claimed", Scan.claimed_by == worker)
        .values(status="running", started_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def release(
    session: AsyncSession, scan_id: uuid.UUID, worker: str, *, retry_at: dt.datetime, error: str
) -> None:
    """Back to the queue after a dispatch that did not reach an agent."""
    await session.execute(
        update(Scan)
        .where(Scan.id == scan_id, Scan.status == "claimed", Scan.claimed_by == worker)
        .values(status="queued", run_after=retry_at, error=error, claimed_by=None)
        .execution_options(synchronize_session=False)
    )


async def fail(
    session: AsyncSession, scan_id: uuid.UUID, *, step: str, error: str, only_from: Sequence[str]
) -> bool:
    """Mark a scan failed (only while in one of ``only_from``); the project keeps its result."""
    result = await session.execute(
        update(Scan)
        .where(Scan.id == scan_id, Scan.status.in_(only_from))
        .values(status="failed", failed_step=step, error=error[:2000], finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def reap(
    sessions: async_sessionmaker[AsyncSession], *, claim_timeout: float, result_timeout: float
) -> tuple[int, int]:
    """Claims a dead process left behind go back to the queue; scans an agent never reported
    on fail at step "timeout", and so do queued scans whose integration was deleted (nothing
    could ever run them). Returns (requeued, failed)."""
    now = utcnow()
    async with sessions() as session, session.begin():
        requeued = await session.execute(
            update(Scan)
            .where(
                Scan.status == "claimed",
                Scan.claimed_at < now - dt.timedelta(seconds=claim_timeout),
            )
            .values(status="queued", claimed_by=None)
            .execution_options(synchronize_session=False)
        )
        timed_out = await session.execute(
            update(Scan)
            .where(
                Scan.status == "running",
                Scan.started_at < now - dt.timedelta(seconds=result_timeout),
            )
            .values(
                status="failed",
                failed_step="timeout",
                error=f"no result from the agent within {result_timeout:g}s",
                finished_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        orphaned = await session.execute(
            update(Scan)
            .where(Scan.status == "queued", Scan.integration_id.is_(None))
            .values(
                status="failed",
                failed_step="dispatch",
                error="the integration was deleted before the scan could run",
                finished_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    failed = timed_out.rowcount + orphaned.rowcount  # type: ignore[attr-defined]
    return requeued.rowcount, failed  # type: ignore[attr-defined]


async def counts(session: AsyncSession) -> dict[str, int]:
    """Scans per status (from the table, not from a side counter)."""
    rows = await session.execute(select(Scan.status, func.count()).group_by(Scan.status))
    return {status: n for status, n in rows}
