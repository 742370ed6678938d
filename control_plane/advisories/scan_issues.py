"""Issues of stored scans: match a scan's stored CycloneDX SBOM against the advisories in
force, keep its counts, and re-match every project's latest scan when advisories change,
without rescanning any image.

The counts are stored (lists and ``meta.latest_issue_counts`` read them); the issues
themselves are recomputed from the SBOM when asked for, so they always follow the advisories
and nothing has to be rewritten per issue when a feed changes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import NamedTuple

import zstandard
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.advisories.inventory import Inventory, InventoryError, inventory_from_cyclonedx
from control_plane.advisories.matching import AdvisoryIndex, IssueCounts, MatchResult
from control_plane.advisories.models import ScanIssueCounts
from control_plane.models import Project, ScanSbom, utcnow
from shared.logging import get_logger

log = get_logger("control_plane.advisories")


class RematchReport(NamedTuple):
    scans: int  # latest scans matched again
    issues: int  # issues they have now
    unreadable: int  # scans without a readable CycloneDX SBOM (left as they were)


async def stored_inventory(session: AsyncSession, scan_id: uuid.UUID) -> Inventory | None:
    """The inventory in a scan's stored CycloneDX SBOM; None (logged) if there is none."""
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


async def rematch_latest_scans(session: AsyncSession, index: AdvisoryIndex) -> RematchReport:
    """Match every live project's latest scan again (after advisories changed)."""
    scan_ids = (
        await session.scalars(
            select(Project.latest_scan_id).where(
                Project.latest_scan_id.is_not(None), Project.deleted_at.is_(None)
            )
        )
    ).all()
    matched = issues = unreadable = 0
    for scan_id in scan_ids:
        assert scan_id is not None
        result = await match_scan(session, index, scan_id)
        if result is None:
            unreadable += 1
            continue
        matched += 1
        issues += len(result.issues)
    return RematchReport(matched, issues, unreadable)


async def issue_counts(
    session: AsyncSession, scan_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, IssueCounts]:
    """Stored counts per scan (scans never matched are absent)."""
    wanted = list(scan_ids)
    if not wanted:
        return {}
    rows = await session.scalars(select(ScanIssueCounts).where(ScanIssueCounts.scan_id.in_(wanted)))
    return {
        row.scan_id: IssueCounts(
            row.critical, row.high, row.medium, row.low, row.unknown, row.fixable
        )
        for row in rows
    }
