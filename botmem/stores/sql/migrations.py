"""Numbered schema migrations, applied in order and recorded in ``schema_version``.

Every run happens in one write transaction that first takes a lock (a Postgres advisory
lock; on SQLite the ``BEGIN IMMEDIATE`` write lock), so two processes starting at once apply
each migration exactly once: the second waits, then finds the work done. DDL is
transactional on both databases, so a failing migration leaves nothing half-applied.

Rule for later migrations: never edit an applied one. Migration 1 builds its tables from
schema.py as it is today; the first migration that alters one of them must first freeze
migration 1 (copy the version-1 Table definitions here) so fresh databases still replay the
same history.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from botmem.stores.sql import schema
from botmem.stores.sql.engine import Database

# Any constant bigint: identifies botmem's migration lock among Postgres advisory locks.
_PG_LOCK_ID = 0x626F746D656D  # "botmem"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[AsyncConnection], Awaitable[None]]


async def _create_tables_v1(conn: AsyncConnection) -> None:
    tables = [
        schema.agents,
        schema.blocks,
        schema.agent_blocks,
        schema.block_edits,
        schema.messages,
        schema.inbox,
    ]

    def create(sync_conn: Connection) -> None:
        schema.metadata.create_all(sync_conn, tables=tables)

    await conn.run_sync(create)


MIGRATIONS: tuple[Migration, ...] = (Migration(1, "create tables", _create_tables_v1),)


async def migrate(engine: AsyncEngine) -> list[int]:
    """Apply the missing migrations in order; returns the versions applied by this call."""
    return await Database(engine).write(_migrate_locked)


async def applied_versions(conn: AsyncConnection) -> set[int]:
    rows = await conn.execute(select(schema.schema_version.c.version))
    return {row.version for row in rows}


async def _migrate_locked(conn: AsyncConnection) -> list[int]:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
    await conn.run_sync(lambda sync: schema.schema_version.create(sync, checkfirst=True))
    done = await applied_versions(conn)
    applied = []
    for migration in sorted(MIGRATIONS, key=lambda m: m.version):
        if migration.version in done:
            continue
        await migration.apply(conn)
        await conn.execute(
            schema.schema_version.insert().values(
                version=migration.version, name=migration.name, applied_at=datetime.now(UTC)
            )
        )
        applied.append(migration.version)
    return applied
