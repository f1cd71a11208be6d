"""Migration 1: the first tables, frozen as they were at version 1.

These definitions live on their own MetaData and never change: schema.py describes the
current schema, and later migrations (migration_2, ...) bring a version-1 database there.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Connection

from botmem.stores.sql.engine import Conn
from botmem.stores.sql.schema import Id, UtcDateTime

metadata_v1 = MetaData()

Table(
    "agents",
    metadata_v1,
    Column("agent_key", String, primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_active_at", UtcDateTime),
    Column("summary", Text, nullable=False, default=""),
    Column("summary_at", UtcDateTime),
    Column("context_start_id", BigInteger, nullable=False, default=0),
    Column("metadata", JSON, nullable=False, default=dict),
)

Table(
    "blocks",
    metadata_v1,
    Column("id", String(32), primary_key=True),
    Column("label", String, nullable=False),
    Column("value", Text, nullable=False),
    Column("char_limit", Integer, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("read_only", Boolean, nullable=False, default=False),
    Column("version", Integer, nullable=False, default=1),
    Column("shared_name", String, unique=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

Table(
    "agent_blocks",
    metadata_v1,
    Column("agent_key", String, primary_key=True),
    Column("label", String, primary_key=True),
    Column("block_id", ForeignKey("blocks.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Index("ix_agent_blocks_block", "block_id"),
)

Table(
    "block_edits",
    metadata_v1,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("block_id", ForeignKey("blocks.id", ondelete="CASCADE"), nullable=False),
    Column("agent_key", String, nullable=False),
    Column("label", String, nullable=False),
    Column("old_value", Text, nullable=False),
    Column("new_value", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("edit_key", String),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("agent_key", "edit_key", name="uq_block_edits_agent_edit_key"),
    Index("ix_block_edits_block", "block_id", "id"),
    sqlite_autoincrement=True,
)

Table(
    "messages",
    metadata_v1,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("agent_key", String, nullable=False),
    Column("turn_id", BigInteger),
    Column("role", String(16), nullable=False),
    Column("content", Text),
    Column("spoken", Text, nullable=False, server_default=""),
    Column("tool_calls", JSON, nullable=False, default=list),
    Column("tool_call_id", String),
    Column("name", String),
    Column("tokens", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_messages_agent_id", "agent_key", "id"),
    Index("ix_messages_agent_created", "agent_key", "created_at"),
    Index("ix_messages_agent_turn", "agent_key", "turn_id"),
    sqlite_autoincrement=True,
)

Table(
    "inbox",
    metadata_v1,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String, nullable=False),
    Column("source_message_id", String, nullable=False),
    Column("agent_key", String, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reply", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("source", "source_message_id", name="uq_inbox_source_message"),
    Index("ix_inbox_status", "status", "id"),
    Index("ix_inbox_agent", "agent_key"),
    sqlite_autoincrement=True,
)


async def create_tables_v1(conn: Conn) -> None:
    def create(sync_conn: Connection) -> None:
        metadata_v1.create_all(sync_conn)

    await conn.run_sync(create)
