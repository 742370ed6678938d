"""The advisories in force, indexed in memory once per process and rebuilt when they change.

Loading 100,000 advisories takes seconds, matching one scan milliseconds: a request that
lists a scan's issues asks :meth:`IndexCache.get`, which compares a cheap stamp of the
advisories table (row count and newest ``updated_at``) with the one its index was built
from and rebuilds only when another process (an import) changed the table.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import weakref

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from control_plane.advisories.matching import AdvisoryIndex
from control_plane.advisories.models import StoredAdvisory
from control_plane.advisories.services import load_advisories

Stamp = tuple[int, dt.datetime | None]


async def advisories_stamp(session: AsyncSession) -> Stamp:
    """Changes whenever an import adds, updates or withdraws an advisory."""
    count, newest = (
        await session.execute(
            select(func.count(StoredAdvisory.id), func.max(StoredAdvisory.updated_at))
        )
    ).one()
    return int(count), newest


class IndexCache:
    def __init__(self) -> None:
        self._index: AdvisoryIndex | None = None
        self._stamp: Stamp | None = None
        self._lock = asyncio.Lock()
        self.builds = 0

    @property
    def stored(self) -> int:
        """Advisories stored (withdrawn included) when :meth:`get` last looked: 0 means none
        was ever imported."""
        return self._stamp[0] if self._stamp is not None else 0

    async def get(self, session: AsyncSession) -> AdvisoryIndex:
        stamp = await advisories_stamp(session)
        if self._index is not None and stamp == self._stamp:
            return self._index
        async with self._lock:  # one rebuild however many requests arrive meanwhile
            if self._index is None or stamp != self._stamp:
                self._index = AdvisoryIndex(await load_advisories(session))
                self._stamp = stamp
                self.builds += 1
            return self._index


# one index per database per process (tests open several databases in one process)
_CACHES: weakref.WeakKeyDictionary[AsyncEngine, IndexCache] = weakref.WeakKeyDictionary()


def index_cache_for(session: AsyncSession) -> IndexCache:
    """The process's index cache for the database ``session`` is bound to."""
    bind = session.bind
    assert isinstance(bind, AsyncEngine)
    return _CACHES.setdefault(bind, IndexCache())
