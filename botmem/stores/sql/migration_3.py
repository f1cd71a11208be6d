"""Migration 3: scheduled jobs (specs, not pickled callables) and the log of their runs.

Frozen like every migration: its own copies of the two new tables, which never change.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, MetaData, String, Table, Text
from sqlalchemy.engine import Connection

from botmem.stores.sql.engine import Conn
from botmem.stores.sql.schema import Id, UtcDateTime

metadata_v3 = MetaData()

Table(
    "jobs",
    metadata_v3,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("agent_key", String, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("trigger", Text, nullable=False),
    Column("timezone", String, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("next_run_at", UtcDateTime),
    Column("last_run_at", UtcDateTime),
    Index("ix_jobs_status_agent", "status", "agent_key"),
    sqlite_autoincrement=True,
)

Table(
    "job_runs",
    metadata_v3,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_id", Id, nullable=False),
    Column("agent_key", String, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("run_at", UtcDateTime, nullable=False),
    Index("ix_job_runs_agent_kind_run", "agent_key", "kind", "run_at"),
    sqlite_autoincrement=True,
)


async def create_jobs(conn: Conn) -> None:
    """Apply migration 3 inside the migration transaction."""

    def create(sync_conn: Connection) -> None:
        metadata_v3.create_all(sync_conn)

    await conn.run_sync(create)
