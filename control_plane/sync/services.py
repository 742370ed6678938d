"""Sync as domain functions: policies, dry runs, runs. The API views, the console and the
scheduler call these; nothing here speaks HTTP to a caller (the listing goes through the
agent, :mod:`control_plane.sync.listing`).

An inactive integration is never listed: its policy is kept (and may be edited), but no run or
dry run is made for it, and a run made before it was deactivated fails.

Policy: :func:`put_policy` (create or replace: runs at once, ImportAllNew counts from now),
:func:`update_policy` (PATCH: members replaced, whole policy validated again),
:func:`get_policy`, :func:`delete_policy` (stops the schedule; pending runs are dropped).

Runs: :func:`request_run` (run now), :func:`create_dry_run` / :func:`get_run`,
:func:`list_runs`; the scheduler's side: :func:`schedule_due` (a pending run for each policy
whose ``next_run_at`` passed, once across processes), :func:`claim_run` (one pending run, or
one whose process stopped beating, for one worker) and :func:`execute_run`.

A run commits its work in batches, so what it imported before a failure stays; a run that
fails names its step (``list-repositories``, ``list-tags <repository>``, ``import``,
``delete``) and the next run starts clean from a new listing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.errors import DomainError, InvalidInput, NotFound
from control_plane.integrations.services import get_integration
from control_plane.models import Integration, Project, Target, utcnow
from control_plane.pagination import Page, PageRequest, fetch_page
from control_plane.projects.services import import_project, new_project
from control_plane.queue.services import PRIORITY_SCHEDULED
from control_plane.scans.services import enqueue_scan
from control_plane.sync.evaluation import Image, Imported, Key, Plan, State, evaluate, grouped
from control_plane.sync.listing import ListedTag, ListingError
from control_plane.sync.models import ObservedTag, SyncPolicyRow, SyncRun
from control_plane.sync.policy import SyncPolicy, merged, parse_policy
from control_plane.targets.services import get_or_create_target

#: images imported per committed batch
BATCH = 500
#: claims of one run (a process that dies mid-run leaves it to be taken again)
MAX_ATTEMPTS = 3

ListRegistry = Callable[[Integration], Awaitable[tuple[list[str], list[ListedTag]]]]


# --- policies -------------------------------------------------------------------------------


async def get_policy(
    session: AsyncSession, org_id: uuid.UUID, integration_id: uuid.UUID
) -> SyncPolicyRow:
    await get_integration(session, org_id, integration_id)
    row = await session.scalar(
        select(SyncPolicyRow).where(SyncPolicyRow.integration_id == integration_id)
    )
    if row is None:
        raise NotFound("container registry import policy of integration", integration_id)
    return row


async def put_policy(
    session: AsyncSession, org_id: uuid.UUID, integration_id: uuid.UUID, policy: SyncPolicy
) -> SyncPolicyRow:
    """Create or replace the integration's policy; it runs at once (a pending run is made
    here, replacing one still pending), then every ``schedule_frequency_hours``."""
    integration = await get_integration(session, org_id, integration_id)
    now = utcnow()
    row = await session.scalar(
        select(SyncPolicyRow).where(SyncPolicyRow.integration_id == integration_id)
    )
    if row is None:
        row = SyncPolicyRow(org_id=org_id, integration_id=integration_id, document={})
        session.add(row)
    row.document = policy.document()
    row.created_at = row.updated_at = now
    row.next_run_at = now + dt.timedelta(hours=policy.schedule_frequency_hours)
    await _drop_pending(session, integration_id)
    if integration.is_active:  # never listed while inactive: its schedule runs it once active
        session.add(_new_run(integration, "run", "policy", row.document, now))
    await session.flush()
    return row


def _listable(integration: Integration) -> None:
    if not integration.is_active:
        raise InvalidInput(
            f"registry {integration.profile_name} is inactive: it is not listed or synced"
        )


async def _drop_pending(session: AsyncSession, integration_id: uuid.UUID) -> None:
    await session.execute(
        delete(SyncRun).where(
            SyncRun.integration_id == integration_id,
            SyncRun.kind == "run",
            SyncRun.status == "pending",
        )
    )


async def update_policy(
    session: AsyncSession,
    org_id: uuid.UUID,
    integration_id: uuid.UUID,
    changes: dict[str, Any],
    *,
    pointer: str = "",
) -> SyncPolicyRow:
    """Replace the given top-level members; a shorter schedule takes effect now."""
    row = await get_policy(session, org_id, integration_id)
    policy = merged(row.document, changes, pointer)
    row.document = policy.document()
    now = utcnow()
    row.updated_at = now
    soonest = now + dt.timedelta(hours=policy.schedule_frequency_hours)
    row.next_run_at = min(row.next_run_at, soonest)
    await session.flush()
    return row


async def delete_policy(
    session: AsyncSession, org_id: uuid.UUID, integration_id: uuid.UUID
) -> None:
    row = await get_policy(session, org_id, integration_id)
    await session.delete(row)
    await _drop_pending(session, integration_id)
    await session.flush()


def policy_of(row: SyncPolicyRow) -> SyncPolicy:
    return parse_policy(row.document)


# --- runs and dry runs ----------------------------------------------------------------------


def _new_run(
    integration: Integration, kind: str, trigger: str, policy: dict[str, Any], created: dt.datetime
) -> SyncRun:
    return SyncRun(
        org_id=integration.org_id,
        integration_id=integration.id,
        kind=kind,
        trigger=trigger,
        policy=policy,
        policy_created_at=created,
        status="pending",
    )


async def create_dry_run(
    session: AsyncSession, org_id: uuid.UUID, integration_id: uuid.UUID, policy: SyncPolicy
) -> SyncRun:
    """A pending dry run of ``policy`` (ImportAllNew counts from now); it changes nothing."""
    integration = await get_integration(session, org_id, integration_id)
    _listable(integration)
    run = _new_run(integration, "dry_run", "dry_run", policy.document(), utcnow())
    session.add(run)
    await session.flush()
    return run


async def request_run(
    session: AsyncSession, org_id: uuid.UUID, integration_id: uuid.UUID
) -> SyncRun:
    """Run the policy now: a new pending run, or the one already pending or running."""
    row = await get_policy(session, org_id, integration_id)
    waiting = await session.scalar(
        select(SyncRun).where(
            SyncRun.integration_id == integration_id,
            SyncRun.kind == "run",
            SyncRun.status.in_(("pending", "running")),
        )
    )
    if waiting is not None:
        return waiting
    integration = await get_integration(session, org_id, integration_id)
    _listable(integration)
    run = _new_run(integration, "run", "manual", row.document, row.created_at)
    session.add(run)
    await session.flush()
    return run


async def get_run(
    session: AsyncSession,
    org_id: uuid.UUID,
    integration_id: uuid.UUID,
    run_id: uuid.UUID,
    *,
    kind: str | None = None,
) -> SyncRun:
    await get_integration(session, org_id, integration_id)
    run = await session.get(SyncRun, run_id)
    if run is None or run.integration_id != integration_id or (kind and run.kind != kind):
        raise NotFound("dry run job" if kind == "dry_run" else "sync run", run_id)
    return run


async def list_runs(
    session: AsyncSession,
    org_id: uuid.UUID,
    integration_id: uuid.UUID,
    page: PageRequest,
    *,
    kind: str = "run",
) -> Page[SyncRun]:
    await get_integration(session, org_id, integration_id)
    query = select(SyncRun).where(SyncRun.integration_id == integration_id, SyncRun.kind == kind)
    return await fetch_page(session, query, SyncRun.id, page)


# --- the scheduler's side -------------------------------------------------------------------


async def repositories_with_imports(
    session: AsyncSession, integration_id: uuid.UUID
) -> frozenset[str]:
    """Repositories where the sync holds projects (their tags' digests are needed)."""
    rows = await session.scalars(
        select(ObservedTag.repository)
        .where(
            ObservedTag.integration_id == integration_id,
            ObservedTag.project_id.is_not(None),
            ObservedTag.pruned.is_(False),
        )
        .distinct()
    )
    return frozenset(rows)


async def schedule_due(sessions: async_sessionmaker[AsyncSession], now: dt.datetime) -> int:
    """A pending run for each policy whose ``next_run_at`` passed. Each policy's
    ``next_run_at`` is moved on by a conditional UPDATE, so across processes exactly one
    makes the run."""
    async with sessions() as session:
        due = list(
            await session.execute(
                select(SyncPolicyRow.id, SyncPolicyRow.next_run_at).where(
                    SyncPolicyRow.next_run_at <= now
                )
            )
        )
    made = 0
    for policy_id, seen in due:
        async with sessions() as session, session.begin():
            row = await session.get(SyncPolicyRow, policy_id)
            if row is None:
                continue
            hours = int(row.document.get("schedule_frequency_hours", 24))
            moved = await session.execute(
                update(SyncPolicyRow)
                .where(SyncPolicyRow.id == policy_id, SyncPolicyRow.next_run_at == seen)
                .values(next_run_at=now + dt.timedelta(hours=hours))
                .execution_options(synchronize_session=False)
            )
            if not moved.rowcount:  # type: ignore[attr-defined]
                continue  # another process made this run
            busy = await session.scalar(
                select(SyncRun.id).where(
                    SyncRun.integration_id == row.integration_id,
                    SyncRun.kind == "run",
                    SyncRun.status == "pending",
                )
            )
            if busy is not None:
                continue
            integration = await session.get(Integration, row.integration_id)
            if integration is None or not integration.is_active:
                continue
            session.add(_new_run(integration, "run", "schedule", row.document, row.created_at))
            made += 1
    return made


async def claim_run(
    sessions: async_sessionmaker[AsyncSession], worker: str, *, stale_after: float
) -> uuid.UUID | None:
    """One pending run (or a running one whose worker stopped beating) now held by ``worker``;
    a conditional UPDATE, so one process wins each run."""
    now = utcnow()
    stale = now - dt.timedelta(seconds=stale_after)
    abandoned = (SyncRun.status == "running") & (SyncRun.heartbeat_at < stale)
    async with sessions() as session, session.begin():
        # a run whose process died MAX_ATTEMPTS times is not taken again: it fails
        await session.execute(
            update(SyncRun)
            .where(abandoned, SyncRun.attempts >= MAX_ATTEMPTS)
            .values(
                status="failed",
                failed_step="restart",
                error=f"its process stopped {MAX_ATTEMPTS} times during the run",
                finished_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    claimable = or_(SyncRun.status == "pending", abandoned & (SyncRun.attempts < MAX_ATTEMPTS))
    async with sessions() as session:
        candidates = list(
            await session.scalars(select(SyncRun.id).where(claimable).order_by(SyncRun.id).limit(8))
        )
    for run_id in candidates:
        async with sessions() as session, session.begin():
            took = await session.execute(
                update(SyncRun)
                .where(SyncRun.id == run_id, claimable)
                .values(
                    status="running",
                    claimed_by=worker,
                    heartbeat_at=now,
                    started_at=now,
                    attempts=SyncRun.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if took.rowcount:  # type: ignore[attr-defined]
                return run_id
    return None


async def heartbeat(
    sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID, worker: str
) -> bool:
    """Still holding ``run_id``? (False: another process took it over.)"""
    async with sessions() as session, session.begin():
        result = await session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id, SyncRun.claimed_by == worker, SyncRun.status == "running")
            .values(heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- executing a run ------------------------------------------------------------------------


@dataclass
class _Known:
    observed: dict[Key, ObservedTag]
    state: State
    #: keys that have a project row (active or deleted)
    rows: frozenset[Key] = frozenset()


async def _known(
    session: AsyncSession, integration_id: uuid.UUID, listed: Sequence[ListedTag], now: dt.datetime
) -> _Known:
    observed = {
        (o.repository, o.tag): o
        for o in await session.scalars(
            select(ObservedTag).where(ObservedTag.integration_id == integration_id)
        )
    }
    first_listing = not observed
    images = []
    for tag in listed:
        seen = observed.get((tag.repository, tag.tag))
        images.append(
            Image(
                repository=tag.repository,
                tag=tag.tag,
                digest=tag.digest,
                pushed_at=tag.pushed_at,
                first_observed_at=seen.first_observed_at if seen else now,
                baseline=seen.baseline if seen else first_listing,
            )
        )
    rows = await session.execute(
        select(
            Target.repository,
            Project.target_reference,
            Project.id,
            Project.deleted_at,
            Project.image_digest,
        )
        .join(Target, Target.id == Project.target_id)
        .where(Target.integration_id == integration_id)
    )
    imported: dict[Key, Imported] = {}
    tombstoned: set[Key] = set()
    manual: set[Key] = set()
    pruned_keys: set[Key] = set()
    for repository, reference, project_id, deleted_at, scanned_digest in rows:
        key = (repository, reference)
        seen = observed.get(key)
        by_sync = seen is not None and seen.project_id == project_id
        if deleted_at is not None:
            if by_sync and seen is not None and seen.pruned:
                pruned_keys.add(key)
            else:
                tombstoned.add(key)
        elif by_sync and seen is not None:
            # imported without a digest (listed by name): the digest its scan found
            digest = seen.imported_digest or scanned_digest
            imported[key] = Imported(repository, reference, digest)
        else:
            manual.add(key)
    state = State(images, imported, frozenset(tombstoned), frozenset(manual))
    return _Known(observed, state, frozenset(imported) | tombstoned | manual | pruned_keys)


def iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


def dry_run_result(plan: Plan, state: State) -> dict[str, Any]:
    """Snyk's dry-run ``result``; ``observed_at`` is the image's time (push, else first seen),
    null for an image to delete that is no longer listed."""
    times = {i.key: i.time for i in state.images}
    return {
        "images_to_import": grouped((i.repository, i.tag, iso(i.time)) for i in plan.to_import),
        "images_to_delete": grouped(
            (p.repository, p.tag, iso(times.get((p.repository, p.tag)))) for p in plan.to_delete
        ),
        "total_images_processed": plan.total_processed,
    }


class RunFailed(Exception):
    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


async def execute_run(
    sessions: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    list_registry: ListRegistry,
    *,
    beat: Callable[[], Awaitable[bool]] | None = None,
) -> SyncRun:
    """Carry out a claimed run (or dry run) to ``completed`` or ``failed``."""
    async with sessions() as session:
        run = await session.get(SyncRun, run_id)
        if run is None:
            raise NotFound("sync run", run_id)
        integration = await session.get(Integration, run.integration_id)
    try:
        if integration is None:
            raise RunFailed("list-repositories", "the integration was deleted")
        if not integration.is_active:  # deactivated after the run was made
            raise RunFailed(
                "list-repositories",
                f"registry {integration.profile_name} is inactive: it is not listed",
            )
        try:
            _, listed = await list_registry(integration)
        except ListingError as exc:
            raise RunFailed(exc.step, exc.message) from None
        await _carry_out(sessions, run, integration, listed, beat)
    except RunFailed as exc:
        await _finish(sessions, run_id, status="failed", step=exc.step, error=str(exc))
    except DomainError as exc:
        await _finish(sessions, run_id, status="failed", step="import", error=exc.detail)
    async with sessions() as session:
        done = await session.get(SyncRun, run_id)
        assert done is not None
        return done


async def _finish(
    sessions: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    *,
    status: str,
    step: str | None = None,
    error: str | None = None,
    **values: Any,
) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id)
            .values(
                status=status,
                failed_step=step,
                error=error[:2000] if error else None,
                finished_at=utcnow(),
                **values,
            )
            .execution_options(synchronize_session=False)
        )


async def _counts(sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID, **n: int) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id)
            .values(heartbeat_at=utcnow(), **n)
            .execution_options(synchronize_session=False)
        )


async def _carry_out(
    sessions: async_sessionmaker[AsyncSession],
    run: SyncRun,
    integration: Integration,
    listed: list[ListedTag],
    beat: Callable[[], Awaitable[bool]] | None,
) -> None:
    now = utcnow()
    policy = parse_policy(run.policy)
    async with sessions() as session:
        known = await _known(session, integration.id, listed, now)
    plan = evaluate(policy, known.state, created_at=run.policy_created_at, now=now)
    if run.kind == "dry_run":
        await _finish(
            sessions,
            run.id,
            status="completed",
            result=dry_run_result(plan, known.state),
            listed=len(listed),
            imported=len(plan.to_import),
            deleted=len(plan.to_delete),
            skipped=len(plan.skipped),
        )
        return
    await _observe(sessions, integration.id, listed, known, now)
    await _counts(sessions, run.id, listed=len(listed), skipped=len(plan.skipped) + plan.deferred)
    imported = failed = 0
    for start in range(0, len(plan.to_import), BATCH):
        if beat is not None and not await beat():
            raise RunFailed("import", "another process took this run over")
        batch = plan.to_import[start : start + BATCH]
        try:
            done, bad = await _import_batch(sessions, integration, batch, known)
        except Exception as exc:
            raise RunFailed("import", f"{type(exc).__name__}: {exc}"[:500]) from None
        imported += done
        failed += bad
        await _counts(sessions, run.id, imported=imported, failed=failed)
    deleted = 0
    if plan.to_delete:
        try:
            deleted = await _prune(sessions, integration.id, plan.to_delete)
        except Exception as exc:
            raise RunFailed("delete", f"{type(exc).__name__}: {exc}"[:500]) from None
    await _forget_gone(sessions, integration.id, listed)
    await _finish(
        sessions, run.id, status="completed", imported=imported, failed=failed, deleted=deleted
    )


async def _observe(
    sessions: async_sessionmaker[AsyncSession],
    integration_id: uuid.UUID,
    listed: list[ListedTag],
    known: _Known,
    now: dt.datetime,
) -> None:
    """Remember every listed tag: first-seen time, digest, push time. Changed rows are
    updated by primary key in one executemany per set of columns, not one statement per
    tag (after a run that listed by name, every digest is new: 10,000 tags took 5 s)."""
    first_listing = not known.observed
    # rows with a project whose digest is known now for the first time also get it as
    # their imported digest (a move re-sets it); the others only digest and push time
    changed: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    async with sessions() as session, session.begin():
        for tag in listed:
            seen = known.observed.get((tag.repository, tag.tag))
            if seen is None:
                session.add(
                    ObservedTag(
                        integration_id=integration_id,
                        repository=tag.repository,
                        tag=tag.tag,
                        digest=tag.digest,
                        pushed_at=tag.pushed_at,
                        first_observed_at=now,
                        baseline=first_listing,
                    )
                )
            elif seen.digest != tag.digest or seen.pushed_at != tag.pushed_at:
                values: dict[str, Any] = {
                    "integration_id": integration_id,
                    "repository": tag.repository,
                    "tag": tag.tag,
                    "digest": tag.digest,
                    "pushed_at": tag.pushed_at,
                }
                first_digest = (
                    seen.project_id is not None and seen.imported_digest is None and tag.digest
                )
                if first_digest:
                    values["imported_digest"] = tag.digest
                changed[bool(first_digest)].append(values)
        for rows in changed.values():
            if rows:
                await session.execute(update(ObservedTag), rows)


async def _import_batch(
    sessions: async_sessionmaker[AsyncSession],
    integration: Integration,
    batch: list[Image],
    known: _Known,
) -> tuple[int, int]:
    """Targets, projects and scheduled-lane scans for one batch, committed together. Images
    with no project row at all are inserted in bulk (one flush); the others (digest moved,
    pruned by the sync) go through :func:`import_project`."""
    done = bad = 0
    async with sessions() as session, session.begin():
        targets: dict[str, Target] = {}
        chosen: list[tuple[Image, Project]] = []
        fresh: list[Project] = []
        for image in batch:
            try:
                target = targets.get(image.repository)
                if target is None:
                    target = await get_or_create_target(
                        session, integration.org_id, integration, image.repository
                    )
                    targets[image.repository] = target
                if image.key not in known.rows and image.tag.strip() == image.tag and image.tag:
                    project: Project | None = new_project(
                        target, image.tag, integration=integration, importer_id=None
                    )
                    assert project is not None
                    fresh.append(project)
                else:
                    seen = known.observed.get(image.key)
                    pruned = seen is not None and seen.pruned
                    project = await import_project(
                        session,
                        target,
                        image.tag,
                        integration=integration,
                        importer_id=None,
                        automatic=not pruned,
                    )
            except InvalidInput:
                bad += 1
                continue
            if project is not None:  # None: a person deleted it meanwhile
                chosen.append((image, project))
        session.add_all(fresh)
        await session.flush()
        for _, project in chosen:
            await enqueue_scan(
                session, project, reason="sync", priority=PRIORITY_SCHEDULED, flush=False
            )
        await session.flush()
        if chosen:
            await session.execute(
                update(ObservedTag),
                [
                    {
                        "integration_id": integration.id,
                        "repository": image.repository,
                        "tag": image.tag,
                        "project_id": project.id,
                        "imported_digest": image.digest,
                        "pruned": False,
                    }
                    for image, project in chosen
                ],
            )
        done = len(chosen)
    return done, bad


async def _prune(
    sessions: async_sessionmaker[AsyncSession], integration_id: uuid.UUID, gone: list[Imported]
) -> int:
    """Delete the projects of ``gone`` (the sync's own deletion: a later match brings them
    back, unlike a person's)."""
    now = utcnow()
    deleted = 0
    async with sessions() as session, session.begin():
        for item in gone:
            seen = await session.get(ObservedTag, (integration_id, item.repository, item.tag))
            if seen is None or seen.project_id is None:
                continue
            result = await session.execute(
                update(Project)
                .where(Project.id == seen.project_id, Project.deleted_at.is_(None))
                .values(deleted_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            seen.pruned = True
            seen.imported_digest = None
            deleted += result.rowcount  # type: ignore[attr-defined]
    return deleted


async def _forget_gone(
    sessions: async_sessionmaker[AsyncSession], integration_id: uuid.UUID, listed: list[ListedTag]
) -> None:
    """Tags no longer listed are forgotten (pushed again, they are new), unless the sync made a
    project for them (kept: it says which project is the sync's to delete or bring back)."""
    present = {(t.repository, t.tag) for t in listed}
    async with sessions() as session, session.begin():
        rows = list(
            await session.execute(
                select(ObservedTag.repository, ObservedTag.tag, ObservedTag.project_id).where(
                    ObservedTag.integration_id == integration_id
                )
            )
        )
        for repository, tag, project_id in rows:
            if (repository, tag) in present or project_id is not None:
                continue
            await session.execute(
                delete(ObservedTag).where(
                    ObservedTag.integration_id == integration_id,
                    ObservedTag.repository == repository,
                    ObservedTag.tag == tag,
                )
            )
