"""What the projects domain can do: find, list with Snyk's filters, change, tombstone.

A project's scan fields show its latest *succeeded* scan (written by
:func:`control_plane.scans.services.record_success`); a deleted project keeps its row with
``deleted_at`` set, is hidden from every read, and is skipped by automatic imports.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, NamedTuple

from sqlalchemy import String, cast, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, joinedload
from sqlalchemy.sql.elements import ColumnElement

from control_plane.errors import InvalidInput, NotFound
from control_plane.models import Integration, Project, ProjectTag, Target, User, utcnow
from control_plane.pagination import Page, PageRequest, fetch_page

BUSINESS_CRITICALITY = ("critical", "high", "medium", "low")
ENVIRONMENT = (
    "frontend",
    "backend",
    "internal",
    "external",
    "mobile",
    "saas",
    "onprem",
    "hosted",
    "distributed",
)
LIFECYCLE = ("production", "development", "sandbox")
TEST_FREQUENCIES = ("daily", "weekly", "never")
#: tag keys: Snyk's letters, digits, - and _, widened to every character AWS allows in a
#: resource tag key (space . : / = + @), so ECR repository tags can become project tags
TAG_KEY = re.compile(r"^[A-Za-z0-9_.:/=+@ -]{1,128}$")
MAX_TAG_VALUE = 256


@dataclass(frozen=True)
class ProjectFilter:
    """Snyk's ``GET /orgs/{org}/projects`` filters; an empty tuple means "any"."""

    origins: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    names_start_with: tuple[str, ...] = ()
    ids: tuple[uuid.UUID, ...] = ()
    target_ids: tuple[uuid.UUID, ...] = ()
    target_reference: str | None = None
    #: every (key, value) must be on the project
    tags: tuple[tuple[str, str], ...] = ()
    business_criticality: tuple[str, ...] = ()
    environment: tuple[str, ...] = ()
    lifecycle: tuple[str, ...] = ()
    importing_user_ids: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True)
class ProjectUpdate:
    """What ``PATCH`` may change; None leaves a field as it is."""

    tags: list[tuple[str, str]] | None = None
    business_criticality: list[str] | None = None
    environment: list[str] | None = None
    lifecycle: list[str] | None = None
    test_frequency: str | None = None
    owner_id: uuid.UUID | None = None
    clear_owner: bool = False


def _json_array_holds(column: InstrumentedAttribute[list[Any]], value: str) -> ColumnElement[bool]:
    # the arrays hold enum words only (checked before), so a text match on the quoted word is
    # exact; it works alike on SQLite's JSON text and PostgreSQL's json::text
    return cast(column, String).contains(f'"{value}"')


def _conditions(org_id: uuid.UUID, f: ProjectFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Project.org_id == org_id, Project.deleted_at.is_(None)]
    if f.origins:
        where.append(Project.origin.in_(f.origins))
    if f.types:
        where.append(Project.type.in_(f.types))
    if f.names:
        where.append(Project.name.in_(f.names))
    if f.names_start_with:
        prefixes = [Project.name.startswith(p, autoescape=True) for p in f.names_start_with]
        where.append(or_(*prefixes))
    if f.ids:
        where.append(Project.id.in_(f.ids))
    if f.target_ids:
        where.append(Project.target_id.in_(f.target_ids))
    if f.target_reference is not None:
        where.append(Project.target_reference == f.target_reference)
    for key, value in f.tags:
        where.append(
            exists().where(
                ProjectTag.project_id == Project.id,
                ProjectTag.key == key,
                ProjectTag.value == value,
            )
        )
    for column, values in (
        (Project.business_criticality, f.business_criticality),
        (Project.environment, f.environment),
        (Project.lifecycle, f.lifecycle),
    ):
        where.extend(_json_array_holds(column, v) for v in values)
    if f.importing_user_ids:
        where.append(Project.importer_id.in_(f.importing_user_ids))
    return where


#: what a listing reads of each project (timestamps cost a parse each on SQLite: only the
#: ones shown are read)
LISTED_COLUMNS = (
    Project.id,
    Project.org_id,
    Project.target_id,
    Project.name,
    Project.type,
    Project.target_reference,
    Project.origin,
    Project.created_at,
    Project.status,
    Project.business_criticality,
    Project.environment,
    Project.lifecycle,
    Project.test_frequency,
    Project.image_digest,
    Project.platform,
    Project.importer_id,
    Project.owner_id,
    Project.dependency_total,
    Project.dependency_total_updated_at,
    Project.latest_scan_id,
)


class TagPair(NamedTuple):
    key: str
    value: str


class TargetSummary(NamedTuple):
    id: uuid.UUID
    display_name: str
    url: str | None
    created_at: dt.datetime


async def list_projects(
    session: AsyncSession,
    org_id: uuid.UUID,
    filters: ProjectFilter,
    page: PageRequest,
    *,
    with_target: bool = False,
) -> Page[SimpleNamespace]:
    """One page of the org's live projects, oldest first, targets summarised when asked.

    Items are read-only views with the :class:`Project` attributes a listing shows
    (:data:`LISTED_COLUMNS`; ``tags`` as
    :class:`TagPair`, ``target`` a :class:`TargetSummary` or None): a listing is read by
    column, not as ORM objects, which halves its cost on a page of 100.
    """
    query = select(*LISTED_COLUMNS).where(*_conditions(org_id, filters))
    if with_target:
        query = query.join(Target, Target.id == Project.target_id).add_columns(
            Target.display_name.label("_target_display_name"),
            Target.url.label("_target_url"),
            Target.created_at.label("_target_created_at"),
        )
    found = await fetch_page(session, query, Project.id, page, rows=True)
    tags: dict[uuid.UUID, list[TagPair]] = {row.id: [] for row in found.items}
    if tags:
        tag_rows = await session.execute(
            select(ProjectTag.project_id, ProjectTag.key, ProjectTag.value)
            .where(ProjectTag.project_id.in_(list(tags)))
            .order_by(ProjectTag.project_id, ProjectTag.position)
        )
        for project_id, key, value in tag_rows:
            tags[project_id].append(TagPair(key, value))
    items = []
    for row in found.items:
        values = row._asdict()
        target = None
        if with_target:
            target = TargetSummary(
                row.target_id,
                values.pop("_target_display_name"),
                values.pop("_target_url"),
                values.pop("_target_created_at"),
            )
        items.append(SimpleNamespace(**values, tags=tags[row.id], target=target))
    return Page(items, has_next=found.has_next, has_prev=found.has_prev)


async def get_project(
    session: AsyncSession, org_id: uuid.UUID, project_id: uuid.UUID, *, with_target: bool = False
) -> Project:
    query = select(Project).where(
        Project.id == project_id, Project.org_id == org_id, Project.deleted_at.is_(None)
    )
    if with_target:
        query = query.options(joinedload(Project.target))
    project = await session.scalar(query)
    if project is None:
        raise NotFound("project", project_id)
    return project


def check_tags(pairs: list[tuple[str, str]], pointer: str = "/data/attributes/tags") -> None:
    for index, (key, value) in enumerate(pairs):
        if not TAG_KEY.match(key):
            raise InvalidInput(
                "tag key must be 1 to 128 letters, digits, spaces or - _ . : / = + @",
                pointer=f"{pointer}/{index}/key",
            )
        if len(value) > MAX_TAG_VALUE:
            raise InvalidInput(
                f"tag value must be at most {MAX_TAG_VALUE} characters",
                pointer=f"{pointer}/{index}/value",
            )


def tags_from_aws(tags: list[dict[str, str]]) -> list[tuple[str, str]]:
    """Project tags from resource tags in AWS's ``[{"Key", "Value"}]`` shape (ECR)."""
    return [(t["Key"], t["Value"]) for t in tags]


def _check_words(values: list[str], allowed: tuple[str, ...], name: str) -> list[str]:
    for index, value in enumerate(values):
        if value not in allowed:
            raise InvalidInput(
                f"{name} values must be among {', '.join(allowed)}",
                pointer=f"/data/attributes/{name}/{index}",
            )
    return list(dict.fromkeys(values))


def replace_tags(project: Project, pairs: list[tuple[str, str]]) -> None:
    check_tags(pairs)
    unique = list(dict.fromkeys(pairs))
    project.tags = [ProjectTag(position=i, key=k, value=v) for i, (k, v) in enumerate(unique)]


async def update_project(
    session: AsyncSession, org_id: uuid.UUID, project_id: uuid.UUID, change: ProjectUpdate
) -> Project:
    project = await get_project(session, org_id, project_id)
    if change.tags is not None:
        replace_tags(project, change.tags)
        await session.flush()  # old tag rows go before new ones with the same positions
    if change.business_criticality is not None:
        project.business_criticality = _check_words(
            change.business_criticality, BUSINESS_CRITICALITY, "business_criticality"
        )
    if change.environment is not None:
        project.environment = _check_words(change.environment, ENVIRONMENT, "environment")
    if change.lifecycle is not None:
        project.lifecycle = _check_words(change.lifecycle, LIFECYCLE, "lifecycle")
    if change.test_frequency is not None:
        if change.test_frequency not in TEST_FREQUENCIES:
            raise InvalidInput(
                f"test_frequency must be one of {', '.join(TEST_FREQUENCIES)}",
                pointer="/data/attributes/test_frequency",
            )
        project.test_frequency = change.test_frequency
    if change.owner_id is not None:
        if await session.get(User, change.owner_id) is None:
            raise InvalidInput(
                f"user {change.owner_id} not found",
                pointer="/data/relationships/owner/data/id",
            )
        project.owner_id = change.owner_id
    elif change.clear_owner:
        project.owner_id = None
    project.updated_at = utcnow()
    await session.flush()
    return await get_project(session, org_id, project_id, with_target=True)


async def delete_project(session: AsyncSession, org_id: uuid.UUID, project_id: uuid.UUID) -> None:
    """Tombstones the project: hidden everywhere, its scans kept, automatic imports skip it."""
    project = await get_project(session, org_id, project_id)
    project.deleted_at = project.updated_at = utcnow()
    await session.flush()


def new_project(
    target: Target, tag: str, *, integration: Integration | None, importer_id: uuid.UUID | None
) -> Project:
    """A project row for ``target:tag`` (not added to a session: bulk imports add many and
    flush once)."""
    return Project(
        org_id=target.org_id,
        target_id=target.id,
        integration_id=integration.id if integration is not None else None,
        name=f"{target.repository}:{tag}",
        target_reference=tag,
        origin=integration.integration_type if integration is not None else "api",
        importer_id=importer_id,
        tags=[],
    )


async def import_project(
    session: AsyncSession,
    target: Target,
    tag: str,
    *,
    integration: Integration | None,
    importer_id: uuid.UUID | None,
    automatic: bool = False,
    tags: list[tuple[str, str]] | None = None,
) -> Project | None:
    """The project for ``target:tag``, created on first import.

    A tombstoned project is brought back by an explicit import; an automatic one (a policy
    or a scheduled sync) skips it and answers None.
    """
    tag = tag.strip()
    if not tag:
        raise InvalidInput("the image tag must not be empty")
    project = await session.scalar(
        select(Project).where(Project.target_id == target.id, Project.target_reference == tag)
    )
    if project is not None and project.deleted_at is not None:
        if automatic:
            return None
        project.deleted_at = None
        project.updated_at = utcnow()
    if project is None:
        project = new_project(target, tag, integration=integration, importer_id=importer_id)
        session.add(project)
    if tags is not None:
        replace_tags(project, tags)
    await session.flush()
    return project


async def is_tombstoned(session: AsyncSession, target_id: uuid.UUID, tag: str) -> bool:
    found = await session.scalar(
        select(Project.id).where(
            Project.target_id == target_id,
            Project.target_reference == tag,
            Project.deleted_at.is_not(None),
        )
    )
    return found is not None
