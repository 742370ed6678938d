"""The console's container-images list: projects with their registry, latest scan status and
issue counts, filtered, sorted and cut in pages by a keyset (sort key, id), so page 200 of
10,000 images costs what page 1 does.

Read by column in one query per page; the latest scan's status is a correlated lookup on the
``(project_id, id)`` index of scans, made only for the rows of the page unless the status is
filtered on.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.advisories.models import ScanIssueCounts
from control_plane.errors import InvalidInput
from control_plane.models import Integration, Project, Scan

PAGE_SIZE = 50
#: what a user may sort by -> the column (NULL-free)
SORTS = ("name", "-name", "-dependencies", "dependencies")
#: statuses a user may filter by: the latest scan's status, or none at all
STATUSES = ("not-scanned", "queued", "claimed", "running", "succeeded", "failed")


@dataclass(frozen=True)
class ImageQuery:
    registry: uuid.UUID | None = None
    status: str | None = None
    name: str | None = None
    sort: str = "name"
    after: str | None = None


@dataclass(frozen=True)
class ImageRow:
    id: uuid.UUID
    name: str
    registry_id: uuid.UUID | None
    registry: str | None
    dependencies: int | None
    #: None: never scanned
    status: str | None
    last_scanned: dt.datetime | None
    #: severity -> count, None until advisories have been matched
    issues: dict[str, int] | None


@dataclass(frozen=True)
class ImagePage:
    rows: Sequence[ImageRow]
    #: cursor of the next page, None on the last
    next_cursor: str | None


def _latest_status() -> Any:
    return (
        select(Scan.status)
        .where(Scan.project_id == Project.id)
        .order_by(Scan.id.desc())
        .limit(1)
        .correlate(Project)
        .scalar_subquery()
    )


def _sort_column(sort: str) -> Any:
    if sort.lstrip("-") == "name":
        return Project.name
    return func.coalesce(Project.dependency_total, -1)


def _cursor(key: object, ident: uuid.UUID) -> str:
    raw = json.dumps({"k": key, "id": str(ident)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode(cursor: str, sort: str) -> tuple[object, uuid.UUID]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        key, ident = value["k"], uuid.UUID(value["id"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidInput("after is not a cursor of this list", parameter="after") from None
    wanted = str if sort.lstrip("-") == "name" else int
    if not isinstance(key, wanted):
        raise InvalidInput("after is not a cursor of this sort", parameter="after")
    return key, ident


async def list_images(session: AsyncSession, org_id: uuid.UUID, q: ImageQuery) -> ImagePage:
    if q.sort not in SORTS:
        raise InvalidInput(f"sort must be one of {', '.join(SORTS)}", parameter="sort")
    if q.status is not None and q.status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", parameter="status")
    column = _sort_column(q.sort)
    descending = q.sort.startswith("-")
    status = _latest_status().label("status")
    query = (
        select(
            Project.id,
            Project.name,
            Project.integration_id,
            Integration.profile_name,
            Project.dependency_total,
            Project.dependency_total_updated_at,
            status,
            ScanIssueCounts.critical,
            ScanIssueCounts.high,
            ScanIssueCounts.medium,
            ScanIssueCounts.low,
            ScanIssueCounts.unknown,
            column.label("sort_key"),
        )
        .outerjoin(Integration, Integration.id == Project.integration_id)
        .outerjoin(ScanIssueCounts, ScanIssueCounts.scan_id == Project.latest_scan_id)
        .where(Project.org_id == org_id, Project.deleted_at.is_(None))
    )
    if q.registry is not None:
        query = query.where(Project.integration_id == q.registry)
    if q.name:
        query = query.where(Project.name.contains(q.name, autoescape=True))
    if q.status == "not-scanned":
        query = query.where(_latest_status().is_(None))
    elif q.status is not None:
        query = query.where(_latest_status() == q.status)
    if q.after:
        key, ident = _decode(q.after, q.sort)
        # a row-value comparison: one index range on both databases (an OR of two is not)
        pair, after = tuple_(column, Project.id), tuple_(literal(key), literal(ident))
        query = query.where(pair < after if descending else pair > after)
    order = (column.desc(), Project.id.desc()) if descending else (column, Project.id)
    found = (await session.execute(query.order_by(*order).limit(PAGE_SIZE + 1))).all()
    rows = [
        ImageRow(
            id=r.id,
            name=r.name,
            registry_id=r.integration_id,
            registry=r.profile_name,
            dependencies=r.dependency_total,
            status=r.status,
            last_scanned=r.dependency_total_updated_at,
            issues=None
            if r.critical is None
            else {
                "critical": r.critical,
                "high": r.high,
                "medium": r.medium,
                "low": r.low,
                "unknown": r.unknown,
            },
        )
        for r in found[:PAGE_SIZE]
    ]
    more = len(found) > PAGE_SIZE
    last = found[PAGE_SIZE - 1] if more else None
    return ImagePage(rows, _cursor(last.sort_key, last.id) if last is not None else None)


async def image_counts(
    session: AsyncSession, integration_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Live images (projects) of each integration."""
    if not integration_ids:
        return {}
    rows = await session.execute(
        select(Project.integration_id, func.count())
        .where(Project.integration_id.in_(integration_ids), Project.deleted_at.is_(None))
        .group_by(Project.integration_id)
    )
    return {ident: count for ident, count in rows.all() if ident is not None}
