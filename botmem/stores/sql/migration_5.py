"""Migration 5: steps (the prompt size of every LLM call, for the admin charts) and an index
on messages' creation time (messages per day across all agents).

Frozen like every migration: its own copy of the new table and literal DDL for the index.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    text,
)
from sqlalchemy.engine import Connection

from botmem.stores.sql.engine import Conn
from botmem.stores.sql.schema import Id, UtcDateTime

metadata_v5 = MetaData()

Table(
    "steps",
    metadata_v5,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("agent_key", String, nullable=False),
    Column("turn_id", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("summarized", Boolean, nullable=False),
    Index("ix_steps_agent_id", "agent_key", "id"),
    sqlite_autoincrement=True,
)


async def steps_and_messages_by_date(conn: Conn) -> None:
    """Apply migration 5 inside the migration transaction."""

    def create(sync_conn: Connection) -> None:
        metadata_v5.create_all(sync_conn)

    await conn.run_sync(create)
    await conn.execute(text("CREATE INDEX ix_messages_created ON messages (created_at)"))
