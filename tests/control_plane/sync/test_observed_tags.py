"""What a run remembers of each listed tag, on SQLite and PostgreSQL: a registry read by name
first (no digests) and with digests on the next run has every digest stored, the imported
digest of the sync's projects included, in the one batched write; a digest that then moves is
stored again and its project scanned again."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from control_plane.db import Database
from control_plane.encryption import SecretBox
from control_plane.models import Integration, Scan
from control_plane.sync import services
from control_plane.sync.listing import ListedTag
from control_plane.sync.models import ObservedTag, SyncRun
from control_plane.sync.policy import parse_policy
from tests.control_plane import factories

EVERYTHING = {"name": "all", "import_policy": {"type": "ImportAll"}}
REPOSITORIES = {"app/web": 30, "app/api": 25}


def listing(digest: dict[tuple[str, str], str] | None) -> list[ListedTag]:
    """Every tag of REPOSITORIES, by name (``digest`` None) or with the given digests."""
    return [
        ListedTag(repo, f"1.{n}", digest[(repo, f"1.{n}")] if digest else None, None)
        for repo, count in REPOSITORIES.items()
        for n in range(count)
    ]


def sha(text: str) -> str:
    return "sha256:" + text.encode().hex().ljust(64, "0")[:64]


async def _run(
    db: Database, org_id: uuid.UUID, integration_id: uuid.UUID, listed: list[ListedTag]
) -> SyncRun:
    async with db.sessions() as session, session.begin():
        await services.request_run(session, org_id, integration_id)
    run_id = await services.claim_run(db.sessions, "w", stale_after=60)
    assert run_id is not None

    async def list_registry(integration: Integration) -> tuple[list[str], list[ListedTag]]:
        return sorted(REPOSITORIES), listed

    return await services.execute_run(db.sessions, run_id, list_registry)


async def _observed(db: Database) -> dict[tuple[str, str], ObservedTag]:
    async with db.sessions() as session:
        return {(o.repository, o.tag): o for o in await session.scalars(select(ObservedTag))}


async def test_digests_learnt_on_a_later_listing_are_stored_for_every_tag(
    db: Database, box: SecretBox
) -> None:
    async with db.sessions() as session, session.begin():
        acct = await factories.account(session)
        integration = await factories.integration(session, box, acct.org)
        org_id, integration_id = acct.org.id, integration.id
        await services.put_policy(session, org_id, integration_id, parse_policy(EVERYTHING))
    # the policy's own run, made by put_policy, listed by name
    run_id = await services.claim_run(db.sessions, "w", stale_after=60)
    assert run_id is not None

    async def by_name(integration: Integration) -> tuple[list[str], list[ListedTag]]:
        return sorted(REPOSITORIES), listing(None)

    first = await services.execute_run(db.sessions, run_id, by_name)
    total = sum(REPOSITORIES.values())
    assert (first.status, first.listed, first.imported) == ("completed", total, total)
    observed = await _observed(db)
    assert all(o.digest is None and o.project_id is not None for o in observed.values())

    # the next listing has digests: all stored, each the imported digest of its project
    digests = {(t.repository, t.tag): sha(f"{t.repository}:{t.tag}") for t in listing(None)}
    second = await _run(db, org_id, integration_id, listing(digests))
    assert (second.status, second.listed, second.imported) == ("completed", total, 0)
    observed = await _observed(db)
    assert {k: (o.digest, o.imported_digest) for k, o in observed.items()} == {
        k: (d, d) for k, d in digests.items()
    }

    # one tag moves: its digest is stored, its project scanned again, the rest untouched
    moved = dict(digests)
    moved[("app/api", "1.7")] = sha("moved")
    async with db.sessions() as session:
        scans_before = len(list(await session.scalars(select(Scan.id))))
    third = await _run(db, org_id, integration_id, listing(moved))
    assert (third.status, third.imported) == ("completed", 1)
    observed = await _observed(db)
    assert {k: o.digest for k, o in observed.items()} == moved
    assert observed[("app/api", "1.7")].imported_digest == sha("moved")
    async with db.sessions() as session:
        assert len(list(await session.scalars(select(Scan.id)))) == scans_before + 1
