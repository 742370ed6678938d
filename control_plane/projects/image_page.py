"""What the console's image page shows of one project: the image, its registry, the latest
scan (and the one in flight, if any), the packages of the visible result, its issue counts and
its scan history. One read; nothing here changes data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.advisories.index_cache import IndexCache
from control_plane.advisories.matching import Issue
from control_plane.advisories.models import ScanIssueCounts
from control_plane.advisories.scan_issues import list_scan_issues
from control_plane.errors import NotFound
from control_plane.models import Integration, Project, Scan, User
from control_plane.pagination import PageRequest
from control_plane.projects.services import get_project
from control_plane.results.sbom_packages import ImageFacts, image_facts
from control_plane.scans.services import latest_sbom

IN_FLIGHT = ("queued", "claimed", "running")
#: scans shown in the history, newest first
HISTORY = 100
#: issues listed on the page and in the report (the counts cover them all)
ISSUES_SHOWN = 500


@dataclass(frozen=True)
class ImageDetails:
    project: Project
    registry: Integration | None
    #: newest first
    history: list[Scan]
    facts: ImageFacts | None
    issues: ScanIssueCounts | None
    #: user id -> user name of who asked for each scan in the history
    requesters: dict[uuid.UUID, str]
    #: the visible scan's issues, worst first (empty until advisories were matched)
    vulnerabilities: list[Issue]

    @property
    def latest(self) -> Scan | None:
        return self.history[0] if self.history else None

    @property
    def in_flight(self) -> bool:
        return self.latest is not None and self.latest.status in IN_FLIGHT

    @property
    def visible_scan(self) -> Scan | None:
        return next((s for s in self.history if s.id == self.project.latest_scan_id), None)


SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "unknown": 4}


async def image_details(
    session: AsyncSession,
    org_id: uuid.UUID,
    project_id: uuid.UUID,
    *,
    packages: bool = True,
    advisories: IndexCache | None = None,
) -> ImageDetails:
    project = await get_project(session, org_id, project_id)
    registry = (
        await session.get(Integration, project.integration_id) if project.integration_id else None
    )
    history = list(
        await session.scalars(
            select(Scan)
            .where(Scan.project_id == project.id)
            .order_by(Scan.id.desc())
            .limit(HISTORY)
        )
    )
    asked = {s.requested_by for s in history if s.requested_by is not None}
    requesters = (
        dict(
            (await session.execute(select(User.id, User.username).where(User.id.in_(asked)))).all()
        )
        if asked
        else {}
    )
    facts = None
    issues = None
    vulnerabilities: list[Issue] = []
    if project.latest_scan_id is not None:
        issues = await session.get(ScanIssueCounts, project.latest_scan_id)
        if packages:
            try:
                facts = image_facts((await latest_sbom(session, project, "cyclonedx")).content)
            except NotFound:
                facts = None
        if issues is not None and advisories is not None:
            index = await advisories.get(session)
            found = await list_scan_issues(
                session, index, project.latest_scan_id, PageRequest(limit=ISSUES_SHOWN)
            )
            vulnerabilities = sorted(
                (item.issue for item in found.items),
                key=lambda i: (SEVERITY_ORDER.get(i.severity, 5), i.advisory_id, i.package_name),
            )
    return ImageDetails(project, registry, history, facts, issues, requesters, vulnerabilities)
