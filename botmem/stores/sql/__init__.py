"""SQL stores (SQLAlchemy Core): SQLite by default (run inline), PostgreSQL via asyncpg."""

from __future__ import annotations

from datetime import UTC, datetime

from botmem.stores.base import Clock, Stores, VectorIndex
from botmem.stores.memory_vectors import MemoryVectorIndex
from botmem.stores.sql.agents import SqlAgentStore
from botmem.stores.sql.archival import SqlArchivalStore
from botmem.stores.sql.blocks import SqlBlockStore
from botmem.stores.sql.engine import open_database
from botmem.stores.sql.history import SqlHistoryStore
from botmem.stores.sql.inbox import SqlInboxStore
from botmem.stores.sql.jobs import SqlJobStore
from botmem.stores.sql.leases import SqlLeaseStore
from botmem.stores.sql.migrations import migrate
from botmem.stores.sql.steps import SqlStepStore

__all__ = [
    "SqlAgentStore",
    "SqlArchivalStore",
    "SqlBlockStore",
    "SqlHistoryStore",
    "SqlInboxStore",
    "SqlJobStore",
    "SqlLeaseStore",
    "SqlStepStore",
    "open_sql_stores",
]


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def open_sql_stores(
    url: str,
    clock: Clock | None = None,
    vectors: VectorIndex | None = None,
    *,
    pool_size: int = 10,
) -> Stores:
    """Open the database at `url` (e.g. ``sqlite:///data/botmem.db`` or
    ``postgresql+asyncpg://user@host/db``), bring its schema up to date and return the stores.

    `vectors` defaults to an in-memory index: fine for tests, but its vectors are gone at
    exit (messages stay marked indexed), so persistent bots pass a persistent index.
    """
    db = open_database(url, pool_size)
    migrated = False
    try:
        await migrate(db)
        migrated = True
    finally:
        if not migrated:
            await db.close()
    now = clock or _utc_now
    return Stores(
        agents=SqlAgentStore(db, now),
        blocks=SqlBlockStore(db, now),
        history=SqlHistoryStore(db),
        inbox=SqlInboxStore(db, now),
        archival=SqlArchivalStore(db),
        vectors=vectors if vectors is not None else MemoryVectorIndex(),
        jobs=SqlJobStore(db, now),
        leases=SqlLeaseStore(db),
        steps=SqlStepStore(db),
        close=db.close,
    )
