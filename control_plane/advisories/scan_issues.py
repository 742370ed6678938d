"""Issues of stored scans: match a scan's stored CycloneDX SBOM against the advisories in
force, keep its counts, and re-match every project's latest scan when advisories change,
without rescanning any image.

The counts are stored (lists and ``meta.latest_issue_counts`` read them); the issues
themselves are recomputed when asked for, so they always follow the advisories and nothing
has to be rewritten per issue when a feed changes. A scan's inventory is read from its SBOM
once and kept compact beside it for the re-matches that follow.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Collection, Iterable
from typing import NamedTuple, cast

import zstandard
from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.advisories.index_cache import index_cache_for
from control_plane.advisories.inventory import (
    Inventory,
    InventoryError,
    InventoryPackage,
    inventory_from_cyclonedx,
)
from control_plane.advisories.matching import AdvisoryIndex, Issue, IssueCounts, MatchResult
from control_plane.advisories.models import ScanInventory, ScanIssueCounts
from control_plane.advisories.records import ReadOutcome
from control_plane.advisories.services import ImportReport, import_advisories, load_advisories
from control_plane.models import Project, ScanSbom, utcnow
from control_plane.pagination import Page, PageRequest
from shared.logging import get_logger

log = get_logger("control_plane.advisories")

#: latest scans re-matched per database round trip
REMATCH_BATCH = 500
_COUNTS = cast(Table, ScanIssueCounts.__table__)


class RematchReport(NamedTuple):
    scans: int  # latest scans matched again
    issues: int  # issues they have now
    unreadable: int  # scans without a readable CycloneDX SBOM (left as they were)


def pack_inventory(inventory: Inventory) -> bytes:
    """An inventory as compact zstd-compressed JSON (a few kB for 500 packages)."""
    doc = [inventory.distro_id, inventory.distro_version, [list(p) for p in inventory.packages]]
    return zstandard.ZstdCompressor(level=3).compress(json.dumps(doc).encode())


def unpack_inventory(data: bytes) -> Inventory:
    distro_id, distro_version, packages = json.loads(zstandard.ZstdDecompressor().decompress(data))
    return Inventory(distro_id, distro_version, tuple(InventoryPackage(*p) for p in packages))


async def _inventory_from_sbom(session: AsyncSession, scan_id: uuid.UUID) -> Inventory | None:
    row = await session.scalar(
        select(ScanSbom).where(ScanSbom.scan_id == scan_id, ScanSbom.format == "cyclonedx")
    )
    if row is None:
        return None
    try:
        content = zstandard.ZstdDecompressor().decompress(row.content, max_output_size=row.size)
        return inventory_from_cyclonedx(json.loads(content))
    except (zstandard.ZstdError, ValueError) as exc:  # InventoryError is a ValueError
        reason = str(exc) if isinstance(exc, InventoryError) else f"unreadable SBOM: {exc}"
        log.warning("scan not matched", scan_id=str(scan_id), reason=reason)
        return None


async def stored_inventory(session: AsyncSession, scan_id: uuid.UUID) -> Inventory | None:
    """A scan's inventory: kept compact after the first read of its CycloneDX SBOM. None
    (logged) when the scan has no readable SBOM."""
    kept = await session.get(ScanInventory, scan_id)
    if kept is not None:
        try:
            return unpack_inventory(kept.content)
        except (zstandard.ZstdError, ValueError, TypeError) as exc:
            log.warning(
                "kept inventory unreadable; reading the SBOM", scan_id=str(scan_id), reason=str(exc)
            )
    inventory = await _inventory_from_sbom(session, scan_id)
    if inventory is not None:
        if kept is None:
            session.add(ScanInventory(scan_id=scan_id, content=pack_inventory(inventory)))
        else:
            kept.content = pack_inventory(inventory)
    return inventory


async def _store_counts(session: AsyncSession, scan_id: uuid.UUID, counts: IssueCounts) -> None:
    row = await session.get(ScanIssueCounts, scan_id)
    if row is None:
        row = ScanIssueCounts(scan_id=scan_id)
        session.add(row)
    row.critical, row.high, row.medium = counts.critical, counts.high, counts.medium
    row.low, row.unknown, row.fixable = counts.low, counts.unknown, counts.fixable
    row.matched_at = utcnow()


async def match_scan(
    session: AsyncSession, index: AdvisoryIndex, scan_id: uuid.UUID
) -> MatchResult | None:
    """Match one stored scan (when it lands, or again); its counts are stored. None when the
    scan has no readable CycloneDX SBOM."""
    inventory = await stored_inventory(session, scan_id)
    if inventory is None:
        return None
    result = index.match(inventory)
    await _store_counts(session, scan_id, result.counts)
    return result


async def match_landed_scan(session: AsyncSession, scan_id: uuid.UUID) -> MatchResult | None:
    """Match a scan that has just landed against the advisories in force (the process's
    cached index). None when no advisory was ever imported: its counts stay "never matched"
    until an import matches every latest scan."""
    cache = index_cache_for(session)
    index = await cache.get(session)
    if not cache.stored:  # one count query per landing scan: the stamp the cache read
        return None
    return await match_scan(session, index, scan_id)


async def rematch_latest_scans(session: AsyncSession, index: AdvisoryIndex) -> RematchReport:
    """Match every live project's latest scan again (after advisories changed)."""
    scan_ids = [
        scan_id
        for scan_id in await session.scalars(
            select(Project.latest_scan_id).where(
                Project.latest_scan_id.is_not(None), Project.deleted_at.is_(None)
            )
        )
        if scan_id is not None
    ]
    report = RematchReport(0, 0, 0)
    for start in range(0, len(scan_ids), REMATCH_BATCH):
        report = await _rematch_batch(
            session, index, scan_ids[start : start + REMATCH_BATCH], report
        )
    return report


async def _rematch_batch(
    session: AsyncSession, index: AdvisoryIndex, batch: list[uuid.UUID], report: RematchReport
) -> RematchReport:
    # One query for the batch's kept inventories and one statement each to replace its
    # counts: per-scan round trips, not matching, were most of a re-match's time.
    result = await session.execute(
        select(ScanInventory.scan_id, ScanInventory.content).where(ScanInventory.scan_id.in_(batch))
    )
    kept: dict[uuid.UUID, bytes] = {scan_id: content for scan_id, content in result}
    now = utcnow()
    rows: list[dict[str, object]] = []
    matched, issues, unreadable = report
    for scan_id in batch:
        inventory = None
        if scan_id in kept:
            try:
                inventory = unpack_inventory(kept[scan_id])
            except (zstandard.ZstdError, ValueError, TypeError):
                inventory = None  # stored_inventory reads the SBOM again and logs it
        if inventory is None:
            inventory = await stored_inventory(session, scan_id)
        if inventory is None:
            unreadable += 1
            continue
        counts = index.count(inventory)
        rows.append({"scan_id": scan_id, "matched_at": now, **counts._asdict()})
        matched += 1
        issues += counts.total
    if rows:
        await session.execute(
            delete(_COUNTS).where(_COUNTS.c.scan_id.in_([r["scan_id"] for r in rows]))
        )
        await session.execute(insert(_COUNTS), rows)
    return RematchReport(matched, issues, unreadable)


async def import_and_rematch(
    session: AsyncSession, outcome: ReadOutcome
) -> tuple[ImportReport, RematchReport | None]:
    """Store what was read and, when anything changed, match every project's latest scan
    again, in the caller's one transaction (None: nothing to re-match)."""
    report = await import_advisories(session, outcome.advisories, outcome.skipped)
    if not report.changed:
        return report, None
    index = AdvisoryIndex(await load_advisories(session))
    return report, await rematch_latest_scans(session, index)


class StoredCounts(NamedTuple):
    counts: IssueCounts
    matched_at: dt.datetime  # Snyk's latest_issue_counts.updated_at


async def issue_counts(
    session: AsyncSession, scan_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, StoredCounts]:
    """Stored counts per scan, for ``meta.latest_issue_counts`` (scans never matched are
    absent)."""
    wanted = list(scan_ids)
    if not wanted:
        return {}
    rows = await session.scalars(select(ScanIssueCounts).where(ScanIssueCounts.scan_id.in_(wanted)))
    return {
        row.scan_id: StoredCounts(
            IssueCounts(row.critical, row.high, row.medium, row.low, row.unknown, row.fixable),
            row.matched_at,
        )
        for row in rows
    }


# Issues are computed, not stored: their ids are derived from what they are about, so the
# same issue keeps its id from one request (and one advisory import) to the next, and the
# control plane's id cursors page through them as through stored rows.
_ISSUE_IDS = uuid.UUID("5f0c8e4e-6b7d-4f53-9c1e-1a2b3c4d5e6f")


class ScanIssue(NamedTuple):
    id: uuid.UUID
    scan_id: uuid.UUID
    issue: Issue


def issue_id(scan_id: uuid.UUID, issue: Issue) -> uuid.UUID:
    about = "\n".join(
        (str(scan_id), issue.advisory_id, issue.package_name, issue.package_ref or "")
    )
    return uuid.uuid5(_ISSUE_IDS, about)


async def list_scan_issues(
    session: AsyncSession,
    index: AdvisoryIndex,
    scan_id: uuid.UUID,
    page: PageRequest,
    *,
    severities: Collection[str] = (),
) -> Page[ScanIssue]:
    """One page of a stored scan's issues (``severities``: only these levels), in id order,
    with the same cursor rules as the stored lists (:func:`control_plane.pagination.fetch_page`)."""
    inventory = await stored_inventory(session, scan_id)
    if inventory is None:
        return Page([], has_next=False, has_prev=False)
    issues = sorted(
        (
            ScanIssue(issue_id(scan_id, issue), scan_id, issue)
            for issue in index.match(inventory).issues
            if not severities or issue.severity in severities
        ),
        key=lambda item: item.id,
    )
    if page.ending_before is not None:
        before = [item for item in issues if item.id < page.ending_before]
        return Page(before[-page.limit :], has_next=True, has_prev=len(before) > page.limit)
    after = [
        item for item in issues if page.starting_after is None or item.id > page.starting_after
    ]
    return Page(
        after[: page.limit],
        has_next=len(after) > page.limit,
        has_prev=page.starting_after is not None,
    )
