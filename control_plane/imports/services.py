"""Importing images and re-testing projects: what Snyk's import call does, as domain functions.

An import names images ``repository:tag`` of one integration. Each gets its target (the
repository) and its project (the tag), brought back if it had been deleted, and a queued scan;
the :class:`ImportJob` groups those scans so the caller can poll how far they are. A re-test
queues one more scan of an existing project. The dispatcher (``control_plane.queue``) does
the rest; nothing here talks to an agent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.errors import InvalidInput, NotFound
from control_plane.integrations.services import get_integration
from control_plane.listed_names import MAX_REPOSITORY, MAX_TAG
from control_plane.models import ImportJob, Project, Scan, Target, utcnow
from control_plane.projects.services import (
    get_project,
    import_project,
    replace_tags,
    tags_from_aws,
)
from control_plane.queue.services import FINISHED, PRIORITY_ADHOC
from control_plane.scans.services import enqueue_scan
from control_plane.targets.services import check_aws_tags, get_or_create_target

#: images one import call may name
MAX_IMAGES = 100


@dataclass(frozen=True)
class ImageName:
    repository: str
    tag: str

    @property
    def name(self) -> str:
        return f"{self.repository}:{self.tag}"


#: the lengths of the columns they land in (Target.repository, Project.target_reference)


def parse_image_name(value: object, pointer: str) -> ImageName:
    """``repository:tag`` (the tag after the last colon that follows the last slash)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("must be a non-empty string 'repository:tag'", pointer=pointer)
    text = value.strip()
    if "@" in text or any(c.isspace() for c in text) or len(text) > 800:
        raise InvalidInput(
            f"{text[:100]!r} is not 'repository:tag' (no digest, no spaces)", pointer=pointer
        )
    head, slash, last = text.rpartition("/")
    name, colon, tag = last.partition(":")
    if not colon or not tag or not name:
        raise InvalidInput(f"{text[:100]!r} has no tag; write 'repository:tag'", pointer=pointer)
    repository = f"{head}{slash}{name}".strip("/")
    for part, value, most in (("repository", repository, MAX_REPOSITORY), ("tag", tag, MAX_TAG)):
        if len(value) > most:
            raise InvalidInput(
                f"{text[:100]!r}: the {part} must be at most {most} characters", pointer=pointer
            )
    return ImageName(repository, tag)


async def import_images(
    session: AsyncSession,
    org_id: uuid.UUID,
    integration_id: uuid.UUID,
    images: list[ImageName],
    *,
    user_id: uuid.UUID | None,
) -> ImportJob:
    """Targets, projects and one queued scan per image, grouped in a new import job."""
    if not images:
        raise InvalidInput("name at least one image", pointer="/target/name")
    if len(images) > MAX_IMAGES:
        raise InvalidInput(f"at most {MAX_IMAGES} images per import", pointer="/targets")
    integration = await get_integration(session, org_id, integration_id)
    if not integration.is_active:
        raise InvalidInput(f"integration {integration_id} is not active")
    job = ImportJob(org_id=org_id, integration_id=integration.id, requested_by=user_id)
    session.add(job)
    await session.flush()
    for image in images:
        target = await get_or_create_target(session, org_id, integration, image.repository)
        project = await import_project(
            session, target, image.tag, integration=integration, importer_id=user_id
        )
        assert project is not None  # an explicit import brings a deleted project back
        await enqueue_scan(
            session,
            project,
            reason="import",
            requested_by=user_id,
            priority=PRIORITY_ADHOC,
            import_job=job,
        )
    return job


async def retest(
    session: AsyncSession, org_id: uuid.UUID, project_id: uuid.UUID, *, user_id: uuid.UUID | None
) -> Scan:
    """One more scan of a project; its current result stays visible until this one lands."""
    project = await get_project(session, org_id, project_id)
    if project.integration_id is None:
        raise InvalidInput(f"project {project_id} has no integration to scan it with")
    return await enqueue_scan(
        session, project, reason="retest", requested_by=user_id, priority=PRIORITY_ADHOC
    )


async def apply_repository_tags(
    session: AsyncSession, project_id: uuid.UUID, tags: list[dict[str, str]]
) -> None:
    """A repository's resource tags (ECR, AWS's ``[{"Key", "Value"}]``) on its target, and as
    tags of the project; project tags a user set under other keys stay, tags that came from
    the repository before and are gone now go."""
    project = await session.get(Project, project_id)
    if project is None:
        return
    target = await session.get(Target, project.target_id)
    if target is None:
        return
    checked = check_aws_tags(tags)
    before = {t["Key"] for t in target.tags or []}
    target.tags = checked
    target.updated_at = utcnow()
    from_repository = tags_from_aws(checked)
    keys = before | {key for key, _ in from_repository}
    kept = [(t.key, t.value) for t in project.tags if t.key not in keys]
    replace_tags(project, from_repository + kept)
    await session.flush()


@dataclass(frozen=True)
class JobEntry:
    scan: Scan
    project: Project


async def get_import_job(
    session: AsyncSession, org_id: uuid.UUID, job_id: uuid.UUID
) -> tuple[ImportJob, list[JobEntry]]:
    """The job and its scans; its ``status`` brought in step with them."""
    job = await session.get(ImportJob, job_id)
    if job is None or job.org_id != org_id:
        raise NotFound("import job", job_id)
    rows = await session.execute(
        select(Scan, Project)
        .join(Project, Project.id == Scan.project_id)
        .where(Scan.import_job_id == job.id)
        .order_by(Scan.id)
    )
    entries = [JobEntry(scan, project) for scan, project in rows]
    status = job_status(entries)
    if job.status != status:
        job.status = status
        await session.flush()
    return job, entries


def job_status(entries: list[JobEntry]) -> str:
    """pending while a scan is unfinished; then complete, or failed when every scan failed."""
    if not entries or any(e.scan.status not in FINISHED for e in entries):
        return "pending"
    return "failed" if all(e.scan.status == "failed" for e in entries) else "complete"


def scan_summary(scan: Scan) -> dict[str, Any]:
    return {
        "id": str(scan.id),
        "status": scan.status,
        "reason": scan.reason,
        "error": scan.error,
        "failed_step": scan.failed_step,
        "image_digest": scan.image_digest,
        "package_count": scan.package_count,
        "duration_ms": scan.duration_ms,
    }
