"""Storing what agents report: scan results (whole or in chunks) and the end of each job.

A result is taken only for a scan this control plane asked for (``context.ticket``, see
:mod:`control_plane.agent_dispatch`). A scan takes one result: the same result again (a
retry, the same ``resultId``) is answered as stored and changes nothing. A success stores
both SBOMs compressed and, if no newer scan has landed meanwhile, becomes what the project
shows (type, digest, platform, package count); a failure records the error and the step
that failed and leaves the project showing its previous result.

Chunked results (``chunk: {index, count, fields}``) wait in ``result_chunks`` until every
body is in; the scan's row is locked first, so two replicas receiving the last two bodies at
once cannot both miss the moment the result is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
import weakref
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.advisories.scan_issues import match_landed_scan
from control_plane.encryption import SecretBox
from control_plane.models import ResultChunk, Scan, utcnow
from control_plane.queue.dispatch import ticket_matches
from control_plane.results import sbom_documents as docs
from control_plane.scans import services as scans
from shared.logging import get_logger

log = get_logger("control_plane.results")

FINISHED = ("succeeded", "failed")


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


#: text as PostgreSQL stores it: no NUL character (else the insert fails, a 500)
_NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, Field(pattern=_NO_NUL)]
#: the lengths of the scans columns they land in (longer is refused naming the member)
Digest = Annotated[str, Field(max_length=100, pattern=_NO_NUL)]
Platform = Annotated[str, Field(max_length=100, pattern=_NO_NUL)]
#: an Integer column
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]


#: bodies of one chunked result (each under 10 MB from the agent) and their total joined in
#: memory: far above any image's SBOM, far below what would exhaust a replica
MAX_CHUNKS = 1000
MAX_JOINED_BYTES = 256 * 1024 * 1024


class ChunkMark(_Lenient):
    index: int = Field(..., ge=0, lt=MAX_CHUNKS)
    count: int = Field(..., ge=1, le=MAX_CHUNKS)
    fields: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _index_below_count(self) -> ChunkMark:
        if self.index >= self.count:
            raise ValueError(f"index {self.index} is not below count {self.count}")
        return self


class AgentError(_Lenient):
    code: Text | None = None
    message: Text = ""
    step: Text | None = None


class ResultBody(_Lenient):
    """The agent's ``ResultCallback`` (docs/openapi.json), read leniently."""

    jobId: Text
    resultId: str = Field(..., min_length=1, max_length=200, pattern=_NO_NUL)
    image: Text
    status: Literal["success", "error"]
    digest: Digest | None = None
    platform: Platform | None = None
    distro: dict[str, Any] | None = None
    format: str | None = None
    packageCount: Count | None = None
    sbom: dict[str, Any] | None = None
    error: AgentError | None = None
    chunk: ChunkMark | None = None
    context: dict[str, Any] | None = None


class DoneBody(_Lenient):
    jobId: str
    status: str
    context: dict[str, Any] | None = None


@dataclass(frozen=True)
class Outcome:
    """How the callback is answered: HTTP status and a short JSON body."""

    status: int
    body: dict[str, Any]


def _bad(message: str, status: int = 400) -> Outcome:
    return Outcome(status, {"code": "bad-callback", "message": message})


def _scan_of(context: dict[str, Any] | None, box: SecretBox) -> uuid.UUID | Outcome:
    scan = (context or {}).get("scan")
    if not isinstance(scan, str):
        return _bad("context.scan missing: this control plane did not ask for the scan", 403)
    if not ticket_matches(box, (context or {}).get("ticket"), scan):
        return _bad("context.ticket does not match context.scan", 403)
    try:
        return uuid.UUID(scan)
    except ValueError:
        return _bad("context.scan is not a scan id", 403)


def _parse(raw: bytes, model: type[BaseModel]) -> BaseModel | Outcome:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ())) or "body"
        return _bad(f"{where}: {error.get('msg', 'invalid')}")


_SQLITE_WRITERS: weakref.WeakKeyDictionary[object, asyncio.Lock] = weakref.WeakKeyDictionary()


def _one_writer(
    sessions: async_sessionmaker[AsyncSession],
) -> contextlib.AbstractAsyncContextManager[object]:
    """SQLite: one storing transaction of this process at a time.

    SQLite has one writer; concurrent transactions would wait in its busy handler, which
    sleeps in growing steps (seconds at the tail with 8 callbacks at once). Waiting here
    instead is first come, first served. PostgreSQL: no wait (row locks suffice)."""
    bind = sessions.kw.get("bind")
    if bind is None or bind.dialect.name != "sqlite":
        return contextlib.nullcontext()
    lock = _SQLITE_WRITERS.get(bind)
    if lock is None:
        lock = _SQLITE_WRITERS[bind] = asyncio.Lock()
    return lock


async def _lock_scan(session: AsyncSession, scan_id: uuid.UUID) -> Scan | None:
    query = select(Scan).where(Scan.id == scan_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return await session.scalar(query)


async def ingest_result(
    sessions: async_sessionmaker[AsyncSession], box: SecretBox, raw: bytes
) -> Outcome:
    parsed = _parse(raw, ResultBody)
    if isinstance(parsed, Outcome):
        return parsed
    assert isinstance(parsed, ResultBody)
    scan_id = _scan_of(parsed.context, box)
    if isinstance(scan_id, Outcome):
        return scan_id
    fault = _sbom_fault(parsed)
    if fault:
        return _bad(fault)
    # the CPU-heavy part (SPDX, serialising) before the transaction, so it holds no lock
    documents = _documents(parsed) if parsed.chunk is None else None
    try:
        async with _one_writer(sessions), sessions() as session, session.begin():
            scan = await _lock_scan(session, scan_id)
            if scan is None:
                # the project was deleted meanwhile: nothing to store, nothing to retry
                return Outcome(409, {"code": "gone", "message": "the scan no longer exists"})
            if scan.status in FINISHED:
                return Outcome(200, {"stored": False, "duplicate": True, "scan": str(scan.id)})
            body: ResultBody | None = parsed
            if parsed.chunk is not None:
                conflict = await _chunk_conflict(session, scan, parsed)
                if conflict:
                    return _bad(conflict, 409)
                body = await _add_chunk(session, scan, parsed, raw)
                if body is None:
                    return Outcome(202, {"stored": False, "partial": True, "scan": str(scan.id)})
                fault = _sbom_fault(body)
                if fault:  # each chunk was fine alone; store the failure, not a bad SBOM
                    body = body.model_copy(
                        update={"sbom": None, "error": AgentError(message=fault, step="callback")}
                    )
            assert body is not None
            landed = await _store(session, scan, body, documents or _documents(body))
    except IntegrityError:
        # another replica stored this result a moment ago (unique idempotency key)
        return Outcome(200, {"stored": False, "duplicate": True, "scan": str(scan_id)})
    log.info(
        "scan result stored",
        scan=str(scan_id),
        image=parsed.image,
        status=parsed.status,
        packages=parsed.packageCount,
    )
    if landed:
        await _match(sessions, scan_id)
    return Outcome(200, {"stored": True, "scan": str(scan_id)})


async def _match(sessions: async_sessionmaker[AsyncSession], scan_id: uuid.UUID) -> None:
    """Match the scan that just landed, in a transaction of its own: the result is stored
    already, and a failure to match loses nothing (the next advisory import matches it)."""
    try:
        async with _one_writer(sessions), sessions() as session, session.begin():
            await match_landed_scan(session, scan_id)
    except Exception:
        log.exception("scan stored but not matched against the advisories", scan=str(scan_id))


def _sbom_fault(body: ResultBody) -> str | None:
    if body.status != "success" or body.sbom is None:
        return None
    return docs.cyclonedx_fault(body.sbom)


async def _chunk_conflict(session: AsyncSession, scan: Scan, part: ResultBody) -> str | None:
    """Why this body cannot join the bodies already kept under its resultId, or None: a
    resultId is one scan's (another scan's bodies are never joined to it), and every body
    of a result says the same ``chunk.count`` (else a result would be cut short)."""
    assert part.chunk is not None
    kept = (
        await session.execute(
            select(ResultChunk.scan_id, ResultChunk.count)
            .where(ResultChunk.result_id == part.resultId)
            .limit(1)
        )
    ).first()
    if kept is None:
        return None
    if kept.scan_id != scan.id:
        return "resultId is that of another scan's result"
    if kept.count != part.chunk.count:
        return f"chunk.count {part.chunk.count} differs from this result's {kept.count}"
    return None


async def _add_chunk(
    session: AsyncSession, scan: Scan, part: ResultBody, raw: bytes
) -> ResultBody | None:
    """Keep one body; the whole result once every body is in, else None."""
    assert part.chunk is not None
    exists = await session.scalar(
        select(func.count())
        .select_from(ResultChunk)
        .where(ResultChunk.result_id == part.resultId, ResultChunk.index == part.chunk.index)
    )
    if not exists:
        session.add(
            ResultChunk(
                result_id=part.resultId,
                index=part.chunk.index,
                count=part.chunk.count,
                scan_id=scan.id,
                body=docs.compress(raw),
            )
        )
        await session.flush()
    rows = list(
        await session.scalars(
            select(ResultChunk)
            .where(ResultChunk.result_id == part.resultId)
            .order_by(ResultChunk.index)
        )
    )
    if len(rows) < part.chunk.count:
        return None
    await session.execute(delete(ResultChunk).where(ResultChunk.result_id == part.resultId))
    size = sum(docs.decompressed_size(r.body) for r in rows)
    if size > MAX_JOINED_BYTES:  # the scan fails; its bodies are never held in memory at once
        message = f"the result's bodies add up to {size} bytes, over the {MAX_JOINED_BYTES} joined"
        error = AgentError(code="result-too-large", message=message, step="callback")
        return part.model_copy(update={"chunk": None, "sbom": None, "error": error})
    bodies = [json.loads(docs.decompress(r.body)) for r in rows]
    return ResultBody.model_validate(_join(bodies))


def _join(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate each SBOM list named in ``chunk.fields`` in index order."""
    merged = dict(bodies[0])
    fields = (merged.pop("chunk", None) or {}).get("fields") or []
    sbom = dict(merged.get("sbom") or {})
    for name in fields:
        sbom[name] = [item for body in bodies for item in (body.get("sbom") or {}).get(name, [])]
    merged["sbom"] = sbom
    return merged


def _documents(body: ResultBody) -> dict[str, bytes] | None:
    """The SBOMs to store for a successful result: CycloneDX as sent, SPDX derived."""
    if body.status != "success" or body.sbom is None:
        return None
    return {
        "cyclonedx": docs.canonical_bytes(body.sbom),
        "spdx": docs.canonical_bytes(docs.spdx_from_cyclonedx(body.sbom)),
    }


async def _store(
    session: AsyncSession, scan: Scan, body: ResultBody, documents: dict[str, bytes] | None
) -> bool:
    """The scans domain records it: a failure apart, a success with both SBOMs (True)."""
    started = scan.started_at or scan.claimed_at or scan.requested_at
    elapsed = max(0, int((utcnow() - started) / dt.timedelta(milliseconds=1)))
    if documents is None or body.sbom is None:
        error = body.error or AgentError(message="the agent reported no SBOM")
        await scans.record_failure(
            session,
            scan.id,
            error=(error.message or error.code or "scan failed")[:2000],
            failed_step=(error.step or error.code or "scan")[:64],
            idempotency_key=body.resultId,
        )
        scan.platform = body.platform
    else:
        outcome = scans.ScanOutcome(
            image_digest=body.digest,
            platform=body.platform,
            package_type=docs.package_type(body.sbom),
            package_count=body.packageCount or 0,
            duration_ms=elapsed,
            sboms=documents,
            idempotency_key=body.resultId,
        )
        await scans.record_success(session, scan.id, outcome)
    # set after recording: changed before, they would be flushed by its first query
    scan.started_at = started
    scan.duration_ms = elapsed
    return documents is not None and body.sbom is not None


async def ingest_done(
    sessions: async_sessionmaker[AsyncSession], box: SecretBox, raw: bytes
) -> Outcome:
    """The agent finished a job: a scan still without a result fails at step "callback"."""
    parsed = _parse(raw, DoneBody)
    if isinstance(parsed, Outcome):
        return parsed
    assert isinstance(parsed, DoneBody)
    scan_id = _scan_of(parsed.context, box)
    if isinstance(scan_id, Outcome):
        return scan_id
    async with _one_writer(sessions), sessions() as session, session.begin():
        scan = await _lock_scan(session, scan_id)
        if scan is None or scan.status in FINISHED:
            return Outcome(200, {"stored": False, "scan": str(scan_id)})
        scan.status = "failed"
        scan.failed_step = "callback"
        scan.error = "the agent finished the job without delivering this image's result"
        scan.finished_at = utcnow()
    log.warning("scan job done without its result", scan=str(scan_id), job=parsed.jobId)
    return Outcome(200, {"stored": True, "scan": str(scan_id)})
