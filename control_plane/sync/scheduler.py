"""The sync scheduler: one per control-plane process, all sharing the database.

Each round: :func:`~control_plane.sync.services.schedule_due` makes the runs whose time
came, then :func:`~control_plane.sync.services.claim_run` takes one pending run (or one whose
process died: no heartbeat for ``SYNC_CLAIM_TIMEOUT``) and executes it, beating while it
lists and imports. Nothing is held in memory between rounds, so a restart loses nothing:
a pending run waits in the table, a run cut short is taken again and starts from a new
listing (what it imported before stays imported).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.encryption import SecretBox, SecretKeyError
from control_plane.models import Integration, utcnow
from control_plane.queue.dispatch import DispatchError, agent_base
from control_plane.rounds import run_rounds
from control_plane.server_settings import ServerSettings
from control_plane.sync import services
from control_plane.sync.listing import ListedTag, Lister, ListingError
from shared.logging import get_logger

log = get_logger("control_plane.sync")


class SyncScheduler:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        settings: ServerSettings,
        *,
        broker_url: str | None,
    ) -> None:
        self.sessions = sessions
        self.box = box
        self.settings = settings
        self.broker_url = broker_url
        self.worker = settings.worker_id
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self.runs = 0

    def wake(self) -> None:
        """A policy or run was just stored by this process: look now."""
        self._wake.set()

    def start(self) -> None:
        self._http = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._loop(), name="sync-scheduler")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.close()

    async def list_registry(self, integration: Integration) -> tuple[list[str], list[ListedTag]]:
        assert self._http is not None
        try:
            base = agent_base(integration, self.box, self.settings, broker_url=self.broker_url)
        except (DispatchError, SecretKeyError) as exc:
            raise ListingError("list-repositories", str(exc)) from None
        async with self.sessions() as session:
            needs = await services.repositories_with_imports(session, integration.id)
        return await Lister(self._http, base).everything(needs)

    async def _loop(self) -> None:
        await run_rounds(self.step, self._wake, self.settings.SYNC_POLL_SECONDS, "sync")

    async def step(self) -> bool:
        """Schedule what is due, then execute one run; True if a run was executed."""
        await services.schedule_due(self.sessions, utcnow())
        run_id = await services.claim_run(
            self.sessions, self.worker, stale_after=self.settings.SYNC_CLAIM_TIMEOUT
        )
        if run_id is None:
            return False
        await self.execute(run_id)
        return True

    async def execute(self, run_id: uuid.UUID) -> None:
        async def beat() -> bool:
            return await services.heartbeat(self.sessions, run_id, self.worker)

        beating = asyncio.create_task(self._beat(run_id))
        try:
            run = await services.execute_run(self.sessions, run_id, self.list_registry, beat=beat)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        self.runs += 1
        log.info(
            "sync run finished",
            run=str(run_id),
            kind=run.kind,
            status=run.status,
            listed=run.listed,
            imported=run.imported,
            deleted=run.deleted,
            skipped=run.skipped,
            failed_step=run.failed_step,
            error=run.error,
        )

    async def _beat(self, run_id: uuid.UUID) -> None:
        every = max(1.0, self.settings.SYNC_CLAIM_TIMEOUT / 4)
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(Exception):
                await services.heartbeat(self.sessions, run_id, self.worker)
