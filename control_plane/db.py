"""The database: an async engine, a session factory, and migrations applied at start-up.

``open_database(url)`` runs ``alembic upgrade head`` programmatically before anything else
touches the tables; on PostgreSQL it holds an advisory lock while doing so, so several
control-plane replicas starting together migrate once.
"""

from __future__ import annotations

import asyncio
import fcntl
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS = Path(__file__).with_name("migrations")
#: pg_advisory_lock key of the migration step ("crbroker" in ASCII, truncated to 63 bits)
_MIGRATION_LOCK = 0x637262726F6B6572 & 0x7FFFFFFFFFFFFFFF


@dataclass
class Database:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def close(self) -> None:
        await self.engine.dispose()


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """An engine for ``url``; on SQLite with foreign keys on, WAL and a busy timeout."""
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_size"] = pool_size
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


#: Alembic's ``context`` is module-global: migrations in one process go one at a time
_process_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


async def migrate(engine: AsyncEngine) -> None:
    """``alembic upgrade head`` on ``engine``, one migrator at a time: within the process by a
    lock, across processes by an advisory lock (PostgreSQL) or a lock file (SQLite)."""
    loop = asyncio.get_running_loop()
    lock = _process_locks.setdefault(loop, asyncio.Lock())
    async with lock:
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        if database and database != ":memory:":
            handle = await asyncio.to_thread(open, f"{database}.migrate-lock", "a")
            try:
                await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
                await _migrate_locked(engine)
            finally:
                handle.close()  # releases the lock
        else:
            await _migrate_locked(engine)


async def _migrate_locked(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            await conn.commit()
        try:
            await conn.run_sync(_upgrade)
            await conn.commit()
        finally:
            if engine.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                await conn.commit()


async def open_database(url: str, *, pool_size: int = 10, run_migrations: bool = True) -> Database:
    """Connect, migrate to the newest revision, and hand back the engine and session factory."""
    if url.startswith("sqlite+aiosqlite:///"):
        path = url.removeprefix("sqlite+aiosqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_size=pool_size)
    if run_migrations:
        await migrate(engine)
    return Database(engine, async_sessionmaker(engine, expire_on_commit=False))
