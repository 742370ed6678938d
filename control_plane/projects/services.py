"""What the projects domain can do: find, list with Snyk's filters, change, tombstone.

A project's scan fields show its latest *succeeded* scan (written by
:func:`control_plane.scans.services.record_success`); a deleted project keeps its row with
``deleted_at`` set, is hidden from every read, and is skipped by automatic imports.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

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
#: Snyk's project tag rules: key of letters, digits, - and _ (ECR tag keys fit), value free
TAG_KEY = re.compile(r"^[A-Za-z0-9_.:/=+@-]{1,128}$")
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


async def list_projects(
    session: AsyncSession,
    org_id: uuid.UUID,
    filters: ProjectFilter,
    page: PageRequest,
    *,
    with_target: bool = False,
) -> Page[Project]:
    """One page of the org's live projects, oldest first; targets loaded when asked."""
    query = select(Project).where(*_conditions(org_id, filters))
    if with_target:
        query = query.options(joinedload(Project.target))
    return await fetch_page(session, query, Project.id, page)


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
                "tag key must be 1 to 128 letters, digits or - _ . : / = + @",
                pointer=f"{pointer}/{index}/key",
            )
        if len(value) > MAX_TAG_VALUE:
            raise InvalidInput(
                f"tag value must be at most {MAX_TAG_VALUE} characters",
                pointer=f"{pointer}/{index}/value",
            )


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
        project = Project(
            org_id=target.org_id,
            target_id=target.id,
            integration_id=integration.id if integration is not None else None,
            name=f"{target.repository}:{tag}",
            target_reference=tag,
            origin=integration.integration_type if integration is not None else "api",
            importer_id=importer_id,
            tags=[],
        )
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
