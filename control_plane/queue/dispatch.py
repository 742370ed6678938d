"""Asking agents to scan: claimed scans become ``POST /scan`` calls, the way Snyk's backend
asks a container registry agent.

Brokered integration: ``POST <relay>/broker/<broker token>/scan`` with
``authorization: ${CR_CREDENTIALS}`` and the callback URL as ``${BROKER_CLIENT_URL}``; the
customer's broker client fills both in, so the registry credentials never leave it. Direct
integration: ``POST <CR_AGENT_URL>/scan`` with the decrypted credentials as its
``Authorization`` (and ``CR_AGENT_SECRET`` when set) and this control plane as the callback
base. For an ECR integration the repository's resource tags are read first
(``/list-with-metadata``) and stored on the target and project.

Sends run as tasks beside the claim loop, at most ``concurrency`` at once, so one agent that
does not answer holds only its own scans.

Every request carries ``context: {scan, ticket}``, echoed by the agent in each callback:
``ticket`` is the scan id sealed with the control plane's secret key, so a callback can only
report on a scan this control plane asked for.

What happens to a claimed scan: the agent accepted it (202) -> ``running``; the agent or the
broker could not be reached, or no broker client is connected -> back to the queue with a
growing delay, until ``SCAN_MAX_ATTEMPTS``; the agent refused the request (4xx) -> ``failed``
at step "dispatch" with the agent's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.encryption import SecretBox, SecretKeyError
from control_plane.errors import DomainError
from control_plane.imports.services import apply_repository_tags
from control_plane.integrations import services as integrations
from control_plane.models import Integration, utcnow
from control_plane.queue import services as scan_queue
from control_plane.rounds import run_rounds
from control_plane.server_settings import ServerSettings
from shared.credentials import encode_credentials
from shared.logging import get_logger

log = get_logger("control_plane.queue")

SBOM_FORMAT = "cyclonedx-json"
#: the agent's shared secret on direct calls (a broker client adds it on brokered ones)
AGENT_SECRET_HEADER = "X-Crbroker-Agent-Secret"
#: statuses worth asking again later: the broker client is away, the relay or agent is busy
RETRYABLE = {404, 408, 425, 429, 500, 502, 503, 504}


class DispatchError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def seal(box: SecretBox, scan_id: uuid.UUID) -> str:
    """The ticket a callback must carry for ``scan_id``: a MAC, identifier-shaped (64 hex
    characters), since the agent echoes only plain identifiers in ``context``."""
    return box.sign(str(scan_id).encode())


def ticket_matches(box: SecretBox, ticket: object, scan_id: str) -> bool:
    if not isinstance(ticket, str) or not ticket:
        return False
    return box.verify(scan_id.encode(), ticket)


@dataclass(frozen=True)
class AgentRoute:
    """Where and how to send one scan request (secrets inside: never log this)."""

    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    where: str  # for logs and errors: "broker" or the agent's URL


@dataclass(frozen=True)
class AgentBase:
    """The agent as this integration reaches it: a base URL and the headers carrying (or, through
    a broker client, standing for) the registry credentials. Secrets inside: never log it."""

    url: str
    headers: dict[str, str]
    where: str  # for logs and errors: "broker" or the agent's URL
    brokered: bool


def agent_base(
    integration: Integration, box: SecretBox, settings: ServerSettings, *, broker_url: str | None
) -> AgentBase:
    if integration.has_broker:
        if integration.broker_token_encrypted is None or not broker_url:
            raise DispatchError("no broker token or BROKER_SERVER_URL", retryable=False)
        token = integrations.broker_token(box, integration)
        return AgentBase(
            url=f"{broker_url}/broker/{token}",
            headers={"authorization": "${CR_CREDENTIALS}", "x-broker-var-sub": "authorization"},
            where="broker",
            brokered=True,
        )
    if not settings.CR_AGENT_URL:
        raise DispatchError("direct integration but CR_AGENT_URL is not set", retryable=False)
    if integration.credentials_encrypted is None:
        raise DispatchError("the integration holds no credentials", retryable=False)
    blob = encode_credentials(integrations.credentials(box, integration)).strip()
    headers = {"authorization": blob}
    if settings.CR_AGENT_SECRET:
        headers[AGENT_SECRET_HEADER] = settings.CR_AGENT_SECRET
    return AgentBase(
        url=settings.CR_AGENT_URL,
        headers=headers,
        where=settings.CR_AGENT_URL,
        brokered=False,
    )


def route_for(
    base: AgentBase, claimed: scan_queue.Claimed, box: SecretBox, *, callback_base: str
) -> AgentRoute:
    """``POST /scan`` for one claimed scan, its callbacks coming back with its ticket."""
    body: dict[str, Any] = {
        "images": [claimed.image],
        "format": SBOM_FORMAT,
        "requestId": str(claimed.scan_id),
        "context": {"scan": str(claimed.scan_id), "ticket": seal(box, claimed.scan_id)},
    }
    if base.brokered:
        body["callbackUrl"] = "${BROKER_CLIENT_URL}"
        body["BROKER_VAR_SUB"] = ["callbackUrl"]
    else:
        body["callbackUrl"] = callback_base
    return AgentRoute(url=f"{base.url}/scan", headers=base.headers, body=body, where=base.where)


async def repository_tags(
    http: aiohttp.ClientSession, base: AgentBase, repository: str
) -> list[dict[str, str]] | None:
    """An ECR repository's resource tags from the agent's ``/list-with-metadata`` answer
    (``Tags``, AWS's Key/Value shape), or None when the agent gives none."""
    try:
        async with http.get(
            f"{base.url}/list-with-metadata/{repository}",
            headers=base.headers,
            timeout=aiohttp.ClientTimeout(total=60),
        ) as resp:
            answer = await resp.json(content_type=None) if resp.status == 200 else None
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return None
    tags = answer.get("Tags") if isinstance(answer, dict) else None
    return tags if isinstance(tags, list) else None


async def send(http: aiohttp.ClientSession, route: AgentRoute, seconds: float) -> str:
    """POST the scan request; the agent's job id, or :class:`DispatchError`."""
    try:
        async with http.post(
            route.url,
            json=route.body,
            headers=route.headers,
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as resp:
            raw = await resp.read()
            status = resp.status
            failure = resp.headers.get("x-broker-failure")
    except TimeoutError:
        raise DispatchError(
            f"{route.where} did not answer within {seconds:g}s", retryable=True
        ) from None
    except aiohttp.ClientError as exc:
        raise DispatchError(
            f"{route.where} unreachable: {type(exc).__name__}", retryable=True
        ) from None
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if status == 202 and isinstance(answer, dict) and isinstance(answer.get("jobId"), str):
        return answer["jobId"]
    detail = _agent_message(answer) or (failure and f"broker: {failure}") or f"answered {status}"
    raise DispatchError(f"{route.where}: {detail}"[:500], retryable=status in RETRYABLE)


def _agent_message(answer: object) -> str | None:
    if isinstance(answer, dict):
        error = answer.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(answer.get("message"), str):
            return str(answer["message"])
    return None


class Dispatcher:
    """Claims scans and hands them to agents, until stopped; one per control-plane process."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        settings: ServerSettings,
        *,
        broker_url: str | None,
        callback_base: str,
        concurrency: int = 16,
    ) -> None:
        self.sessions = sessions
        self.box = box
        self.settings = settings
        self.broker_url = broker_url
        self.callback_base = callback_base
        self.worker = settings.worker_id
        self.concurrency = concurrency
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        #: dispatches under way: a slow agent holds its own scans, not everyone else's
        self._sending: set[asyncio.Task[None]] = set()
        self.dispatched = 0

    def wake(self) -> None:
        """New work was queued by this process: look now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._http = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name="scan-dispatcher")

    async def close(self) -> None:
        for task in [self._task, *self._sending]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._http is not None:
            await self._http.close()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_reap = 0.0

        async def one_round() -> bool:
            nonlocal last_reap
            if loop.time() - last_reap > 10:
                last_reap = loop.time()
                requeued, timed_out = await scan_queue.reap(
                    self.sessions,
                    claim_timeout=self.settings.SCAN_CLAIM_TIMEOUT,
                    result_timeout=self.settings.SCAN_RESULT_TIMEOUT,
                )
                if requeued or timed_out:
                    log.warning("scans reaped", requeued=requeued, timed_out=timed_out)
            return await self.step()

        await run_rounds(one_round, self._wake, self.settings.SCAN_POLL_SECONDS, "dispatch")

    async def step(self) -> bool:
        """One round: claim as many scans as there are free dispatch places and start sending
        them without waiting; True if anything was claimed."""
        free = self.concurrency - len(self._sending)
        if free <= 0:
            return False
        claimed = await scan_queue.claim(self.sessions, self.worker, limit=free)
        for scan in claimed:
            task = asyncio.create_task(self.dispatch(scan), name=f"dispatch-{scan.scan_id}")
            self._sending.add(task)
            task.add_done_callback(self._sent)
        return bool(claimed)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._wake.set()  # a place is free again

    async def dispatch(self, claimed: scan_queue.Claimed) -> None:
        try:
            await self._dispatch(claimed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. the database went away: the reaper requeues the claim
            log.error("scan dispatch crashed", scan=str(claimed.scan_id), error=repr(exc)[:500])

    async def _dispatch(self, claimed: scan_queue.Claimed) -> None:
        assert self._http is not None
        try:
            async with self.sessions() as session:
                integration = await session.scalar(
                    select(Integration).where(Integration.id == claimed.integration_id)
                )
            if integration is None:
                raise DispatchError("the integration was deleted", retryable=False)
            base = agent_base(integration, self.box, self.settings, broker_url=self.broker_url)
            if integration.integration_type == "ecr":
                # before the scan, so a caller who sees the scan landed sees the tags too
                await self._carry_repository_tags(base, claimed)
            route = route_for(base, claimed, self.box, callback_base=self.callback_base)
            job_id = await send(self._http, route, seconds=60)
        except (DispatchError, SecretKeyError) as exc:
            retryable = isinstance(exc, DispatchError) and exc.retryable
            await self._not_sent(claimed, str(exc), retryable=retryable)
            return
        async with self.sessions() as session, session.begin():
            held = await scan_queue.mark_running(session, claimed.scan_id, self.worker)
        self.dispatched += 1
        log.info(
            "scan dispatched",
            scan=str(claimed.scan_id),
            image=claimed.image,
            agent_job=job_id,
            via=route.where,
            claim_held=held,
        )

    async def _carry_repository_tags(self, base: AgentBase, claimed: scan_queue.Claimed) -> None:
        """ECR: the repository's resource tags onto its target and project (seed 002)."""
        assert self._http is not None
        tags = await repository_tags(self._http, base, claimed.repository)
        if tags is None:
            return
        try:
            async with self.sessions() as session, session.begin():
                await apply_repository_tags(session, claimed.project_id, tags)
        except DomainError as exc:
            log.warning(
                "repository tags not taken", repository=claimed.repository, error=exc.detail
            )
            return
        log.info("repository tags taken", repository=claimed.repository, tags=len(tags))

    async def _not_sent(self, claimed: scan_queue.Claimed, error: str, *, retryable: bool) -> None:
        async with self.sessions() as session, session.begin():
            if retryable and claimed.attempts < self.settings.SCAN_MAX_ATTEMPTS:
                delay = self.settings.SCAN_RETRY_SECONDS * 2 ** (claimed.attempts - 1)
                retry_at = utcnow() + dt.timedelta(seconds=min(delay, 600))
                await scan_queue.release(
                    session, claimed.scan_id, self.worker, retry_at=retry_at, error=error
                )
                log.warning(
                    "scan dispatch failed; queued again",
                    scan=str(claimed.scan_id),
                    attempt=claimed.attempts,
                    retry_in=round(delay, 1),
                    error=error,
                )
                return
            await scan_queue.fail(
                session, claimed.scan_id, step="dispatch", error=error, only_from=("claimed",)
            )
        log.warning("scan failed at dispatch", scan=str(claimed.scan_id), error=error)
