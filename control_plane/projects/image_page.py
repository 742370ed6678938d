"""What the console's image page shows of one project: the image, its registry, the latest
scan (and the one in flight, if any), the packages of the visible result, its issue counts and
its scan history. One read; nothing here changes data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.advisories.models import ScanIssueCounts
from control_plane.errors import NotFound
from control_plane.models import Integration, Project, Scan
from control_plane.projects.services import get_project
from control_plane.results.sbom_packages import ImageFacts, image_facts
from control_plane.scans.services import latest_sbom

IN_FLIGHT = ("queued", "claimed", "running")
#: scans shown in the history, newest first
HISTORY = 100


@dataclass(frozen=True)
class ImageDetails:
    project: Project
    registry: Integration | None
    #: newest first
    history: list[Scan]
    facts: ImageFacts | None
    issues: ScanIssueCounts | None

    @property
    def latest(self) -> Scan | None:
        return self.history[0] if self.history else None

    @property
    def in_flight(self) -> bool:
        return self.latest is not None and self.latest.status in IN_FLIGHT

    @property
    def visible_scan(self) -> Scan | None:
        return next((s for s in self.history if s.id == self.project.latest_scan_id), None)


async def image_details(
    session: AsyncSession, org_id: uuid.UUID, project_id: uuid.UUID, *, packages: bool = True
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
    facts = None
    issues = None
    if project.latest_scan_id is not None:
        issues = await session.get(ScanIssueCounts, project.latest_scan_id)
        if packages:
            try:
                facts = image_facts((await latest_sbom(session, project, "cyclonedx")).content)
            except NotFound:
                facts = None
    return ImageDetails(project, registry, history, facts, issues)
