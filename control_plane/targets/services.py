"""What the targets domain can do.

A target is one repository of one integration; its ``display_name`` is the repository name
(so a catalog relates an image's ``relationships.target.data.id`` to the repository). ECR
resource tags ride on the target in AWS's own list-of-``{Key, Value}`` shape.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.errors import InvalidInput, NotFound
from control_plane.models import Integration, Project, Target, utcnow
from control_plane.pagination import Page, PageRequest, fetch_page


@dataclass(frozen=True)
class TargetFilter:
    #: display_name starts with this
    display_name: str | None = None
    url: str | None = None
    exclude_empty: bool = False
    is_private: bool | None = None
    created_gte: dt.datetime | None = None
    integration_types: tuple[str, ...] = ()


def check_aws_tags(tags: Any) -> list[dict[str, str]]:
    """Tags in AWS's shape, checked: a list of ``{"Key": str, "Value": str}``."""
    if not isinstance(tags, list) or not all(
        isinstance(t, dict)
        and set(t) == {"Key", "Value"}
        and isinstance(t["Key"], str)
        and isinstance(t["Value"], str)
        for t in tags
    ):
        raise InvalidInput('tags must be a list of {"Key": string, "Value": string}')
    return [{"Key": t["Key"], "Value": t["Value"]} for t in tags]


async def get_or_create_target(
    session: AsyncSession,
    org_id: uuid.UUID,
    integration: Integration | None,
    repository: str,
    *,
    url: str | None = None,
    tags: list[dict[str, str]] | None = None,
) -> Target:
    """The target of ``repository`` under ``integration``; made on first use, brought back
    if it had been deleted, and its tags replaced when ``tags`` is given."""
    repository = repository.strip().strip("/")
    if not repository:
        raise InvalidInput("repository must not be empty")
    integration_id = integration.id if integration is not None else None
    target = await session.scalar(
        select(Target).where(
            Target.org_id == org_id,
            Target.integration_id.is_(None)
            if integration_id is None
            else Target.integration_id == integration_id,
            Target.repository == repository,
        )
    )
    if target is None:
        target = Target(
            org_id=org_id,
            integration_id=integration_id,
            repository=repository,
            display_name=repository,
            url=url,
            tags=check_aws_tags(tags) if tags is not None else [],
        )
        session.add(target)
    else:
        target.deleted_at = None
        if tags is not None:
            target.tags = check_aws_tags(tags)
        if url is not None:
            target.url = url
    await session.flush()
    return target


async def set_target_tags(
    session: AsyncSession, org_id: uuid.UUID, target_id: uuid.UUID, tags: list[dict[str, str]]
) -> Target:
    target = await get_target(session, org_id, target_id)
    target.tags = check_aws_tags(tags)
    target.updated_at = utcnow()
    await session.flush()
    return target


async def get_target(session: AsyncSession, org_id: uuid.UUID, target_id: uuid.UUID) -> Target:
    target = await session.get(Target, target_id)
    if target is None or target.org_id != org_id or target.deleted_at is not None:
        raise NotFound("target", target_id)
    return target


async def list_targets(
    session: AsyncSession, org_id: uuid.UUID, filters: TargetFilter, page: PageRequest
) -> Page[Target]:
    query = select(Target).where(Target.org_id == org_id, Target.deleted_at.is_(None))
    if filters.display_name:
        query = query.where(Target.display_name.startswith(filters.display_name, autoescape=True))
    if filters.url is not None:
        query = query.where(Target.url == filters.url)
    if filters.is_private is not None:
        query = query.where(Target.is_private.is_(filters.is_private))
    if filters.created_gte is not None:
        query = query.where(Target.created_at >= filters.created_gte)
    if filters.exclude_empty:
        query = query.where(
            exists().where(Project.target_id == Target.id, Project.deleted_at.is_(None))
        )
    if filters.integration_types:
        query = query.join(Integration, Integration.id == Target.integration_id).where(
            Integration.integration_type.in_(filters.integration_types)
        )
    return await fetch_page(session, query, Target.id, page)


async def target_integrations(
    session: AsyncSession, targets: list[Target]
) -> dict[uuid.UUID, Integration]:
    """The integrations of ``targets`` in one query (for rendering a page)."""
    ids = {t.integration_id for t in targets if t.integration_id is not None}
    if not ids:
        return {}
    rows = await session.scalars(select(Integration).where(Integration.id.in_(ids)))
    return {i.id: i for i in rows}


async def delete_target(session: AsyncSession, org_id: uuid.UUID, target_id: uuid.UUID) -> None:
    """Deletes the target and tombstones its projects (automatic imports then skip them)."""
    target = await get_target(session, org_id, target_id)
    now = utcnow()
    target.deleted_at = now
    await session.execute(
        update(Project)
        .where(Project.target_id == target.id, Project.deleted_at.is_(None))
        .values(deleted_at=now, updated_at=now)
    )
    await session.flush()
