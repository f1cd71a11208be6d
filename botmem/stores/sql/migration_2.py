"""Migration 2: full-text search over what was said, archival passages, vector bookkeeping.

Frozen like every migration: literal DDL per dialect and its own copies of the new tables,
so it keeps meaning the same thing when schema.py moves on. Full-text search:

- Messages get a ``context`` column: for a user or assistant message with text, what the
  same agent's previous such message said ('' otherwise). The stores set it on insert;
  here it is filled for the rows already there. Searches match it too, weighted less than
  the message's own words (stores/text.py, CONTEXT_WEIGHT): a reply ("yes, every summer")
  is found by the words of what it answers.
- SQLite: FTS5 external-content tables (``messages_fts`` over spoken and context,
  ``passages_fts``) kept in step by triggers, so every write path (including plain
  DELETEs) maintains them. Only user and assistant messages with text are indexed; the
  triggers test the same condition on the way in and out, which external-content tables
  require.
- PostgreSQL: a stored generated ``search`` tsvector column with a GIN index; for messages
  spoken is labelled A and context B, so ranking can weight them. It uses
  ``botmem_english``: the english configuration with a snowball stemmer that keeps
  stopwords, so that stopwords are decided in one place for every backend (stores/text.py).

Both stem English (porter / snowball) and both fill the index for rows already there.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, MetaData, String, Table, Text, text
from sqlalchemy.engine import Connection

from botmem.stores.sql.engine import Conn
from botmem.stores.sql.schema import Id, UtcDateTime

metadata_v2 = MetaData()

Table(
    "passages",
    metadata_v2,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("agent_key", String, nullable=False),
    Column("text", Text, nullable=False),
    Column("tags", JSON, nullable=False, default=list),
    Column("source_message_ids", JSON, nullable=False, default=list),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_passages_agent_created", "agent_key", "created_at"),
    sqlite_autoincrement=True,
)

Table(
    "passage_tags",
    metadata_v2,
    Column("passage_id", ForeignKey("passages.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String, primary_key=True),
)

_SAID = "role IN ('user', 'assistant') AND spoken != ''"
_TOKENIZE = "porter unicode61 remove_diacritics 2"

_ADD_CONTEXT = "ALTER TABLE messages ADD COLUMN context TEXT DEFAULT '' NOT NULL"
# The previous message said by the same agent, found through ix_messages_agent_id.
_FILL_CONTEXT = f"""UPDATE messages SET context = COALESCE((
      SELECT previous.spoken FROM messages AS previous
      WHERE previous.agent_key = messages.agent_key AND previous.id < messages.id
        AND previous.role IN ('user', 'assistant') AND previous.spoken != ''
      ORDER BY previous.id DESC LIMIT 1
    ), '') WHERE {_SAID}"""

_SQLITE_MESSAGES = (
    'ALTER TABLE messages ADD COLUMN "indexed" BOOLEAN DEFAULT 0 NOT NULL',
    f'UPDATE messages SET "indexed" = 1 WHERE NOT ({_SAID})',
    'CREATE INDEX ix_messages_unindexed ON messages (id) WHERE "indexed" = 0',
    _ADD_CONTEXT,
    _FILL_CONTEXT,
    "CREATE VIRTUAL TABLE messages_fts USING fts5(spoken, context, content='messages', "
    f"content_rowid='id', tokenize='{_TOKENIZE}')",
    "INSERT INTO messages_fts(rowid, spoken, context) "
    f"SELECT id, spoken, context FROM messages WHERE {_SAID}",
    """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
    WHEN new.role IN ('user', 'assistant') AND new.spoken != '' BEGIN
      INSERT INTO messages_fts(rowid, spoken, context) VALUES (new.id, new.spoken, new.context);
    END""",
    """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
    WHEN old.role IN ('user', 'assistant') AND old.spoken != '' BEGIN
      INSERT INTO messages_fts(messages_fts, rowid, spoken, context)
        VALUES ('delete', old.id, old.spoken, old.context);
    END""",
    """CREATE TRIGGER messages_fts_update AFTER UPDATE OF role, spoken, context ON messages BEGIN
      INSERT INTO messages_fts(messages_fts, rowid, spoken, context)
        SELECT 'delete', old.id, old.spoken, old.context
        WHERE old.role IN ('user', 'assistant') AND old.spoken != '';
      INSERT INTO messages_fts(rowid, spoken, context)
        SELECT new.id, new.spoken, new.context
        WHERE new.role IN ('user', 'assistant') AND new.spoken != '';
    END""",
)

_SQLITE_PASSAGES = (
    "CREATE VIRTUAL TABLE passages_fts USING fts5(text, content='passages', "
    f"content_rowid='id', tokenize='{_TOKENIZE}')",
    """CREATE TRIGGER passages_fts_insert AFTER INSERT ON passages BEGIN
      INSERT INTO passages_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER passages_fts_delete AFTER DELETE ON passages BEGIN
      INSERT INTO passages_fts(passages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
    """CREATE TRIGGER passages_fts_update AFTER UPDATE OF text ON passages BEGIN
      INSERT INTO passages_fts(passages_fts, rowid, text) VALUES ('delete', old.id, old.text);
      INSERT INTO passages_fts(rowid, text) VALUES (new.id, new.text);
    END""",
)

_PG_CONFIG = (
    "CREATE TEXT SEARCH DICTIONARY botmem_english_stem (TEMPLATE = snowball, LANGUAGE = english)",
    "CREATE TEXT SEARCH CONFIGURATION botmem_english (COPY = english)",
    "ALTER TEXT SEARCH CONFIGURATION botmem_english "
    "ALTER MAPPING REPLACE english_stem WITH botmem_english_stem",
)

_PG_MESSAGES = (
    "ALTER TABLE messages ADD COLUMN indexed BOOLEAN DEFAULT false NOT NULL",
    f"UPDATE messages SET indexed = true WHERE NOT ({_SAID})",
    "CREATE INDEX ix_messages_unindexed ON messages (id) WHERE indexed = false",
    _ADD_CONTEXT,
    _FILL_CONTEXT,
    # Adding a stored generated column computes it for the existing rows.
    f"""ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS (
      CASE WHEN {_SAID} THEN
        setweight(to_tsvector('botmem_english'::regconfig, spoken), 'A')
        || setweight(to_tsvector('botmem_english'::regconfig, context), 'B')
      END
    ) STORED""",
    "CREATE INDEX ix_messages_search ON messages USING GIN (search)",
)

_PG_PASSAGES = (
    """ALTER TABLE passages ADD COLUMN search tsvector GENERATED ALWAYS AS (
      to_tsvector('botmem_english'::regconfig, text)
    ) STORED""",
    "CREATE INDEX ix_passages_search ON passages USING GIN (search)",
)


async def search_and_passages(conn: Conn) -> None:
    """Apply migration 2 inside the migration transaction."""
    sqlite = conn.dialect.name == "sqlite"

    def create(sync_conn: Connection) -> None:
        metadata_v2.create_all(sync_conn)

    await conn.run_sync(create)
    statements = (
        _SQLITE_MESSAGES + _SQLITE_PASSAGES if sqlite else _PG_CONFIG + _PG_MESSAGES + _PG_PASSAGES
    )
    for statement in statements:
        await conn.execute(text(statement))
