"""What the scans domain can do: ask for a scan, record how it ended, read the history.

Recording is idempotent on the agent's idempotency key (a result that arrives twice is stored
once), and only a *succeeded* scan that is newer than the project's current one moves the
project's visible result, so the previous result stays visible until a new one has landed
(and a slow old scan finishing late does not hide a newer one).

Claiming scans from the queue and talking to agents live with the queue, not here.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

import zstandard
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.errors import InvalidInput, NotFound
from control_plane.models import PROJECT_TYPES, ImportJob, Project, Scan, ScanSbom, utcnow
from control_plane.pagination import Page, PageRequest, fetch_page

SBOM_MEDIA_TYPES = {
    "cyclonedx": "application/vnd.cyclonedx+json",
    "spdx": "application/spdx+json",
}
_ZSTD_LEVEL = 3


@dataclass(frozen=True)
class ScanOutcome:
    """What a finished scan reports (the agent's result, parsed by the callback code)."""

    image_digest: str | None
    platform: str | None
    #: deb / apk / rpm, or linux when the image has no package manager
    package_type: str
    package_count: int
    duration_ms: int | None = None
    #: format name (cyclonedx / spdx) -> the SBOM document's bytes
    sboms: dict[str, bytes] | None = None
    idempotency_key: str | None = None


async def enqueue_scan(
    session: AsyncSession,
    project: Project,
    *,
    reason: str = "import",
    requested_by: uuid.UUID | None = None,
    priority: int = 0,
    import_job: ImportJob | None = None,
    flush: bool = True,
) -> Scan:
    """A queued scan of ``project``; the queue claims it from the table (``flush=False``:
    added to the session only, for callers queueing many at once)."""
    scan = Scan(
        org_id=project.org_id,
        project_id=project.id,
        integration_id=project.integration_id,
        reason=reason,
        priority=priority,
        requested_by=requested_by,
        import_job_id=import_job.id if import_job is not None else None,
    )
    session.add(scan)
    if flush:
        await session.flush()
    return scan


async def _by_key(session: AsyncSession, key: str | None) -> Scan | None:
    if key is None:
        return None
    return await session.scalar(select(Scan).where(Scan.idempotency_key == key))


async def record_success(session: AsyncSession, scan_id: uuid.UUID, outcome: ScanOutcome) -> Scan:
    """Store a succeeded scan's result and SBOMs; move the project's visible result to it."""
    seen = await _by_key(session, outcome.idempotency_key)
    if seen is not None:
        return seen
    if outcome.package_type not in PROJECT_TYPES:
        raise InvalidInput(f"package type must be one of {', '.join(PROJECT_TYPES)}")
    scan = await _scan(session, scan_id)
    now = utcnow()
    scan.status = "succeeded"
    scan.finished_at = now
    scan.started_at = scan.started_at or scan.claimed_at or now
    scan.idempotency_key = outcome.idempotency_key
    scan.image_digest = outcome.image_digest
    scan.platform = outcome.platform
    scan.package_type = outcome.package_type
    scan.package_count = outcome.package_count
    scan.duration_ms = outcome.duration_ms
    scan.error = scan.failed_step = None
    compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
    for fmt, document in (outcome.sboms or {}).items():
        if fmt not in SBOM_MEDIA_TYPES:
            raise InvalidInput(f"SBOM format must be one of {', '.join(SBOM_MEDIA_TYPES)}")
        session.add(
            ScanSbom(
                scan_id=scan.id,
                format=fmt,
                media_type=SBOM_MEDIA_TYPES[fmt],
                content=compressor.compress(document),
                size=len(document),
                sha256=hashlib.sha256(document).hexdigest(),
            )
        )
    project = await session.get(Project, scan.project_id)
    assert project is not None  # scans go with their project (ON DELETE CASCADE)
    if project.latest_scan_id is None or project.latest_scan_id < scan.id:
        project.latest_scan_id = scan.id
        project.type = outcome.package_type
        project.image_digest = outcome.image_digest
        project.platform = outcome.platform
        project.dependency_total = outcome.package_count
        project.dependency_total_updated_at = now
        project.updated_at = now
    await session.flush()
    return scan


async def record_failure(
    session: AsyncSession,
    scan_id: uuid.UUID,
    *,
    error: str,
    failed_step: str | None,
    idempotency_key: str | None = None,
) -> Scan:
    """A failed scan: kept in the history with its error; the project's result is unchanged."""
    seen = await _by_key(session, idempotency_key)
    if seen is not None:
        return seen
    scan = await _scan(session, scan_id)
    scan.status = "failed"
    scan.finished_at = utcnow()
    scan.error = error
    scan.failed_step = failed_step
    scan.idempotency_key = idempotency_key
    await session.flush()
    return scan


async def _scan(session: AsyncSession, scan_id: uuid.UUID) -> Scan:
    scan = await session.get(Scan, scan_id)
    if scan is None:
        raise NotFound("scan", scan_id)
    return scan


async def scan_history(
    session: AsyncSession, org_id: uuid.UUID, project_id: uuid.UUID, page: PageRequest
) -> Page[Scan]:
    """Every scan of a project, oldest first."""
    query = select(Scan).where(Scan.org_id == org_id, Scan.project_id == project_id)
    return await fetch_page(session, query, Scan.id, page)


async def get_scan(session: AsyncSession, org_id: uuid.UUID, scan_id: uuid.UUID) -> Scan:
    scan = await session.get(Scan, scan_id)
    if scan is None or scan.org_id != org_id:
        raise NotFound("scan", scan_id)
    return scan


@dataclass(frozen=True)
class SbomDocument:
    format: str
    media_type: str
    content: bytes
    scan_id: uuid.UUID


async def latest_sbom(session: AsyncSession, project: Project, fmt: str) -> SbomDocument:
    """The SBOM of the project's visible (latest succeeded) scan, decompressed."""
    if fmt not in SBOM_MEDIA_TYPES:
        raise InvalidInput(
            f"format must be one of {', '.join(SBOM_MEDIA_TYPES)}", parameter="format"
        )
    if project.latest_scan_id is None:
        raise NotFound("SBOM of project", project.id)
    row = await session.scalar(
        select(ScanSbom).where(ScanSbom.scan_id == project.latest_scan_id, ScanSbom.format == fmt)
    )
    if row is None:
        raise NotFound(f"{fmt} SBOM of project", project.id)
    content = zstandard.ZstdDecompressor().decompress(row.content, max_output_size=row.size)
    return SbomDocument(row.format, row.media_type, content, row.scan_id)
