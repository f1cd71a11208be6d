"""Numbered schema migrations, applied in order and recorded in ``schema_version``.

Every run happens in one write transaction that first takes a lock (a Postgres advisory
lock; on SQLite the ``BEGIN IMMEDIATE`` write lock), so two processes starting at once apply
each migration exactly once: the second waits, then finds the work done. DDL is
transactional on both databases, so a failing migration leaves nothing half-applied.

Rule for later migrations: never edit an applied one. Each lives in its own module
(migration_<n>.py) and never builds from schema.py (which describes the current schema
only): it keeps frozen copies of the tables it creates and literal DDL for the rest, so a
fresh database always replays the same history.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text

from botmem.stores.sql import schema
from botmem.stores.sql.engine import Conn, Database
from botmem.stores.sql.migration_1 import create_tables_v1
from botmem.stores.sql.migration_2 import search_and_passages
from botmem.stores.sql.migration_3 import create_jobs
from botmem.stores.sql.migration_4 import leases_and_inbox_kinds
from botmem.stores.sql.migration_5 import steps_and_messages_by_date

# Any constant bigint: identifies botmem's migration lock among Postgres advisory locks.
_PG_LOCK_ID = 0x626F746D656D  # "botmem"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Conn], Awaitable[None]]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create tables", create_tables_v1),
    Migration(2, "full-text search, passages, vector bookkeeping", search_and_passages),
    Migration(3, "scheduled jobs and their runs", create_jobs),
    Migration(4, "leases across processes; inbox kinds", leases_and_inbox_kinds),
    Migration(5, "steps' prompt sizes; messages by date", steps_and_messages_by_date),
)


async def migrate(db: Database, *, until: int | None = None) -> list[int]:
    """Apply the missing migrations in order (up to version `until`, default all); returns
    the versions applied by this call."""

    async def work(conn: Conn) -> list[int]:
        return await _migrate_locked(conn, until)

    return await db.write(work)


async def applied_versions(conn: Conn) -> set[int]:
    rows = await conn.execute(select(schema.schema_version.c.version))
    return {row.version for row in rows}


async def _migrate_locked(conn: Conn, until: int | None) -> list[int]:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
    await conn.run_sync(lambda sync: schema.schema_version.create(sync, checkfirst=True))
    done = await applied_versions(conn)
    applied = []
    for migration in sorted(MIGRATIONS, key=lambda m: m.version):
        if migration.version in done or (until is not None and migration.version > until):
            continue
        await migration.apply(conn)
        await conn.execute(
            schema.schema_version.insert().values(
                version=migration.version, name=migration.name, applied_at=datetime.now(UTC)
            )
        )
        applied.append(migration.version)
    return applied
