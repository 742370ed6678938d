"""Scan jobs: accepted at once, run in the background, reported through callbacks.

A job is one ``POST /scan`` (or ``/discover``) with one or more images. Scans from all jobs
share one semaphore of ``MAX_ACTIVE_OPERATIONS``, the sizing snyk's docs assume (one image
at a time per vCPU / 2 GB). Each image's result is delivered as soon as it exists; the job's
``done`` follows the last result. Credentials live in the job object in memory only, for
as long as the job runs, and are never written to the spool or to the status answer.

Nothing a job owes upstream is lost on shutdown: each callback is in the spool before its
first attempt (see :mod:`cr_agent.service.callbacks`), and images the shutdown caught
queued or scanning get an error result (``not-run`` or ``agent-stopped``) and the job its
``done``, spooled for the next start. Such images are not re-run by the agent itself, since
that would need the registry credentials on disk; the upstream sends the scan again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import structlog

from cr_agent.service.callbacks import CallbackSender, CallbackTooLarge, result_bodies
from cr_agent.service.errors import classify
from cr_agent.service.metrics import AgentMetrics
from cr_agent.service.models import (
    DoneCallback,
    ErrorDetail,
    ImageStatus,
    JobState,
    JobStatus,
    ResultCallback,
    ScanRequest,
)
from cr_agent.service.spool import Delivery
from shared.credentials import RegistryCredentials
from shared.logging import get_logger

log = get_logger(__name__)

#: callback paths under the broker client (public rules of the CRA accept filter)
RESULT_PATHS = {"scan": "/v2/import/result", "discover": "/v1/recurring-tests/dependencies"}
DONE_PATH = "/v2/import/done"


@dataclass(slots=True)
class ScanOutcome:
    """What a scan of one image produced, ready for a result callback."""

    digest: str
    platform: str
    distro: dict[str, Any] | None
    package_count: int
    sbom: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


class ImageScanner(Protocol):
    async def scan(
        self, creds: RegistryCredentials, image: str, *, platform: str, sbom_format: str
    ) -> ScanOutcome: ...


@dataclass(slots=True)
class Job:
    id: str
    kind: Literal["scan", "discover"]
    request: ScanRequest
    callback_base: str
    creds: RegistryCredentials | None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    status: JobState = "queued"
    images: list[ImageStatus] = field(default_factory=list)
    delivered: int = 0
    spooled: int = 0
    task: asyncio.Task[None] | None = None
    #: the ``done`` callback has been handed to the sender (so it is in the spool or delivered)
    done_sent: bool = False

    def view(self, pending: int = 0) -> JobStatus:
        return JobStatus(
            jobId=self.id,
            kind=self.kind,
            status=self.status,
            requestId=self.request.requestId,
            createdAt=self.created_at,
            finishedAt=self.finished_at,
            images=list(self.images),
            callbacksDelivered=self.delivered,
            callbacksSpooled=self.spooled,
            callbacksPending=pending,
        )


class JobManager:
    def __init__(
        self,
        scanner: ImageScanner,
        sender: CallbackSender,
        *,
        max_active: int,
        max_body: int,
        history: int = 1000,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.scanner = scanner
        self.sender = sender
        self.max_body = max_body
        self.history = history
        self.semaphore = asyncio.Semaphore(max_active)
        self.max_active = max_active
        self.active = 0
        self.jobs: OrderedDict[str, Job] = OrderedDict()

    def queued(self) -> int:
        return sum(1 for j in self.jobs.values() if j.status in ("queued", "running"))

    def pending_images(self) -> int:
        """Images accepted but not yet scanned, over all jobs."""
        return sum(
            1 for j in self.jobs.values() for s in j.images if s.status in ("queued", "running")
        )

    def submit(
        self,
        kind: Literal["scan", "discover"],
        request: ScanRequest,
        creds: RegistryCredentials,
        callback_base: str,
    ) -> Job:
        job = Job(
            id=str(uuid.uuid4()),
            kind=kind,
            request=request.model_copy(update={"credentials": None}),
            callback_base=callback_base.rstrip("/"),
            creds=creds,
            images=[ImageStatus(image=i, status="queued") for i in request.images],
        )
        self.jobs[job.id] = job
        self._trim()
        job.task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
        log.info("job accepted", job=job.id, kind=kind, images=len(request.images))
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def _trim(self) -> None:
        finished = [k for k, j in self.jobs.items() if j.finished_at is not None]
        while len(self.jobs) > self.history and finished:
            self.jobs.pop(finished.pop(0), None)

    def _url(self, job: Job, path: str) -> str:
        return f"{job.callback_base}{job.request.callbackApiPrefix}{path}"

    async def _run(self, job: Job) -> None:
        # the task runs in a copy of the submitting request's context: request_id stays
        structlog.contextvars.bind_contextvars(job=job.id)
        try:
            job.status = "running"
            await asyncio.gather(*(self._scan_one(job, i) for i in range(len(job.images))))
            job.status = "delivering"
            await self._send_done(job)
            failed = sum(1 for s in job.images if s.status == "failed")
            job.status = "failed" if failed == len(job.images) else "done"
        except asyncio.CancelledError:
            job.status = "failed"
            raise
        except Exception as exc:  # a bug must not leave the job "running" forever
            log.error("job crashed", job=job.id, error=repr(exc), exc_info=exc)
            job.status = "failed"
        finally:
            job.creds = None  # the only copy of the credentials goes with the job
            job.finished_at = datetime.now(UTC)
            log.info("job finished", job=job.id, status=job.status)

    async def _scan_one(self, job: Job, index: int) -> None:
        image = job.images[index].image
        assert job.creds is not None
        async with self.semaphore:
            self.active += 1
            job.images[index] = ImageStatus(image=image, status="running")
            started = time.monotonic()
            try:
                outcome = await self.scanner.scan(
                    job.creds,
                    image,
                    platform=job.request.platform,
                    sbom_format=job.request.format,
                )
            except Exception as exc:
                _status, detail = classify(exc)
                if detail.code == "internal":  # a bug: the operator needs the traceback
                    log.error("image scan failed", job=job.id, image=image, exc_info=exc)
                else:
                    log.warning(
                        "image scan failed",
                        job=job.id,
                        image=image,
                        code=detail.code,
                        step=detail.step,
                    )
                job.images[index] = ImageStatus(image=image, status="failed", error=detail)
                outcome = None
            finally:
                self.active -= 1
            if self.metrics is not None:
                self.metrics.scans.labels(outcome="succeeded" if outcome else "failed").inc()
                self.metrics.scan_seconds.observe(time.monotonic() - started)
        if outcome is not None:
            job.images[index] = ImageStatus(
                image=image,
                status="succeeded",
                digest=outcome.digest,
                packages=outcome.package_count,
            )
        await self._send_result(job, index, outcome)

    def _result_deliveries(
        self, job: Job, index: int, outcome: ScanOutcome | None
    ) -> list[Delivery]:
        status = job.images[index]
        result_id = hashlib.sha256(f"{job.id}\0{index}".encode()).hexdigest()[:32]
        body = ResultCallback(
            jobId=job.id,
            resultId=result_id,
            requestId=job.request.requestId,
            image=status.image,
            status="success" if outcome else "error",
            digest=outcome.digest if outcome else None,
            platform=outcome.platform if outcome else job.request.platform,
            distro=outcome.distro if outcome else None,
            format=job.request.format if outcome else None,
            packageCount=outcome.package_count if outcome else None,
            sbom=outcome.sbom if outcome else None,
            warnings=outcome.warnings if outcome else [],
            error=status.error,
            context=job.request.context,
        ).model_dump(mode="json", exclude_none=True)
        try:
            bodies = result_bodies(body, self.max_body)
        except CallbackTooLarge as exc:
            # cannot be split without truncating: report the image as failed instead
            detail = ErrorDetail(code="result-too-large", message=str(exc), step="callback")
            job.images[index] = ImageStatus(image=status.image, status="failed", error=detail)
            body = {k: v for k, v in body.items() if k not in ("sbom", "distro", "format")}
            body.update(status="error", error=detail.model_dump(exclude_none=True))
            bodies = result_bodies(body, self.max_body)
        url = self._url(job, RESULT_PATHS[job.kind])
        return [
            Delivery(
                url=url, body=data, idempotency_key=f"{result_id}-{n}", job_id=job.id, kind="result"
            )
            for n, data in enumerate(bodies)
        ]

    def _done_delivery(self, job: Job) -> Delivery | None:
        if job.kind == "discover":
            return None  # v1 discovery has results only; there is no done path for it
        failed = sum(1 for s in job.images if s.status == "failed")
        body = DoneCallback(
            jobId=job.id,
            requestId=job.request.requestId,
            status="failed" if failed == len(job.images) else "done",
            succeeded=len(job.images) - failed,
            failed=failed,
            images=job.images,
            context=job.request.context,
        ).model_dump_json(exclude_none=True)
        return Delivery(
            url=self._url(job, DONE_PATH),
            body=body.encode(),
            idempotency_key=f"{job.id}-done",
            job_id=job.id,
            kind="done",
        )

    async def _send_result(self, job: Job, index: int, outcome: ScanOutcome | None) -> None:
        for delivery in self._result_deliveries(job, index, outcome):
            await self._deliver(job, delivery)

    async def _send_done(self, job: Job) -> None:
        delivery = self._done_delivery(job)
        if delivery is not None:
            job.done_sent = True
            await self._deliver(job, delivery)

    async def _deliver(self, job: Job, delivery: Delivery) -> None:
        ok = await self.sender.send(delivery, after_spooled=job.spooled > 0)
        if ok:
            job.delivered += 1
        else:
            job.spooled += 1
            self.sender.wake()

    def _spool_interrupted(self, job: Job) -> None:
        """A job cut short by shutdown still reports: what it had scanned is already in the
        spool; each image still queued or scanning gets an error result saying so, and the
        job its ``done``, spooled for the next start (no network during shutdown)."""
        stopped = {
            "queued": ErrorDetail(
                code="not-run",
                message="the agent stopped before this image was scanned; send the scan again",
                step="queue",
            ),
            "running": ErrorDetail(
                code="agent-stopped",
                message="the agent stopped while scanning this image; send the scan again",
                step="scan",
            ),
        }
        pending = [i for i, s in enumerate(job.images) if s.status in stopped]
        for index in pending:
            state = job.images[index]
            job.images[index] = ImageStatus(
                image=state.image, status="failed", error=stopped[state.status]
            )
            for delivery in self._result_deliveries(job, index, None):
                self.sender.spool.put(delivery)
                job.spooled += 1
        done = None if job.done_sent else self._done_delivery(job)
        if done is not None:
            self.sender.spool.put(done)
            job.spooled += 1
        log.warning(
            "job interrupted by shutdown; its callbacks are spooled",
            job=job.id,
            images=len(pending),
        )

    async def close(self) -> None:
        """Cancel running jobs; what they still owed upstream goes to the spool."""
        running = [j for j in self.jobs.values() if j.task is not None and not j.task.done()]
        for job in running:
            assert job.task is not None
            job.task.cancel()
        for job in running:
            assert job.task is not None
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job.task
            self._spool_interrupted(job)
