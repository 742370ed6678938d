"""Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from control_plane.db import Database, open_database
from control_plane.models import Base


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_schema_matches_the_models(db: Database) -> None:
    async with db.engine.connect() as conn:
        differences = await conn.run_sync(_diff)
    assert differences == []


async def test_opening_twice_migrates_once_and_keeps_the_tables(database_url: str) -> None:
    first = await open_database(database_url)
    await first.close()
    second = await open_database(database_url)
    try:
        async with second.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"orgs", "projects", "scans", "scan_sboms", "alembic_version"} <= tables
    finally:
        await second.close()
