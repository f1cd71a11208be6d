"""The tables, as SQLAlchemy Core, on one MetaData. migrations.py brings a database here.

Kept portable between SQLite and PostgreSQL: no dialect types, autoincrement ids that are
BIGINT on Postgres and the rowid alias on SQLite, timestamps stored as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData()

# SQLite only autoincrements an "INTEGER PRIMARY KEY"; Postgres gets a BIGSERIAL.
Id = BigInteger().with_variant(Integer(), "sqlite")
# Tables with an Id pass sqlite_autoincrement=True so that ids are never reused, even after
# the rows with the highest ids are deleted (an agent wiped); plain SQLite would hand them
# out again. Message ids order history and key tool-call edits: a reused id could be
# mistaken for an old one.


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime; naive values are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Stored in UTC, returned aware in UTC.

    SQLite keeps datetimes as text without an offset (and gives naive values back), so
    values are converted to UTC before binding; that also keeps text comparisons correct.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)


schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String, nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
)

agents = Table(
    "agents",
    metadata,
    Column("agent_key", String, primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_active_at", UtcDateTime),
    Column("summary", Text, nullable=False, default=""),
    Column("summary_at", UtcDateTime),
    Column("context_start_id", BigInteger, nullable=False, default=0),
    Column("metadata", JSON, nullable=False, default=dict),
)

blocks = Table(
    "blocks",
    metadata,
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

agent_blocks = Table(
    "agent_blocks",
    metadata,
    Column("agent_key", String, primary_key=True),
    Column("label", String, primary_key=True),
    Column("block_id", ForeignKey("blocks.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Index("ix_agent_blocks_block", "block_id"),
)

block_edits = Table(
    "block_edits",
    metadata,
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

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("agent_key", String, nullable=False),
    Column("turn_id", BigInteger),
    Column("role", String(16), nullable=False),
    Column("content", Text),
    # What was said (content, or the text of a send_message call): what searches look at.
    Column("spoken", Text, nullable=False, server_default=""),
    # What the agent's previous message said (for messages said, else ''): searched too.
    Column("context", Text, nullable=False, server_default=""),
    Column("tool_calls", JSON, nullable=False, default=list),
    Column("tool_call_id", String),
    Column("name", String),
    Column("tokens", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    # True once the message's vector is stored, or when it needs none (tool traffic, no text).
    Column("indexed", Boolean, nullable=False, default=False, server_default=false()),
    Index("ix_messages_agent_id", "agent_key", "id"),
    Index("ix_messages_agent_created", "agent_key", "created_at"),
    Index("ix_messages_agent_turn", "agent_key", "turn_id"),
    Index("ix_messages_created", "created_at"),  # messages per day across agents (v5)
    sqlite_autoincrement=True,
)

# Only the messages still waiting for a vector: stays small however long the history grows.
# Queries must spell the condition the same way (`messages.c.indexed == false()`) to use it.
ix_messages_unindexed = Index(
    "ix_messages_unindexed",
    messages.c.id,
    sqlite_where=messages.c.indexed == false(),
    postgresql_where=messages.c.indexed == false(),
)

inbox = Table(
    "inbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String, nullable=False),
    Column("source_message_id", String, nullable=False),
    Column("agent_key", String, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("kind", String(16), nullable=False, default="message"),  # of the payload (v4)
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

passages = Table(
    "passages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("agent_key", String, nullable=False),
    Column("text", Text, nullable=False),
    Column("tags", JSON, nullable=False, default=list),  # as given, in order
    Column("source_message_ids", JSON, nullable=False, default=list),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_passages_agent_created", "agent_key", "created_at"),
    sqlite_autoincrement=True,
)

# One row per distinct tag of a passage: what tag filters query (portable and indexed,
# where a JSON column would need dialect-specific operators).
passage_tags = Table(
    "passage_tags",
    metadata,
    Column("passage_id", ForeignKey("passages.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String, primary_key=True),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("agent_key", String, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("trigger", Text, nullable=False),  # at:<ISO 8601> or cron:<crontab>
    Column("timezone", String, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("next_run_at", UtcDateTime),
    Column("last_run_at", UtcDateTime),
    Index("ix_jobs_status_agent", "status", "agent_key"),
    sqlite_autoincrement=True,
)

# The log of runs, which per-day limits count. agent_key and kind are copied from the job so
# counting needs no join; rows go with the agent (no foreign key to jobs, deleted alongside).
job_runs = Table(
    "job_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_id", Id, nullable=False),
    Column("agent_key", String, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("run_at", UtcDateTime, nullable=False),
    Index("ix_job_runs_agent_kind_run", "agent_key", "kind", "run_at"),
    sqlite_autoincrement=True,
)

# Who holds an agent (its turns) or a background role (the scheduler) across processes, and
# until when: a holder that dies stops renewing and its lease runs out (migration 4).
leases = Table(
    "leases",
    metadata,
    Column("name", String, primary_key=True),
    Column("holder", String, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

# One row per LLM call of a turn: the prompt size the admin pages chart (migration 5). Rows go
# with the agent; turn_id is the inbox id (no foreign key: the inbox item may be gone).
steps = Table(
    "steps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("agent_key", String, nullable=False),
    Column("turn_id", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("summarized", Boolean, nullable=False, default=False),
    Index("ix_steps_agent_id", "agent_key", "id"),
    sqlite_autoincrement=True,
)
