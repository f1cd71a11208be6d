"""Migration 4: leases (which process holds an agent or a background role) and inbox kinds.

Frozen like every migration: its own copy of the new table and literal DDL for the column.
The kind lets a worker skip commands (a gateway answers those) without reading payloads.
"""

from __future__ import annotations

from sqlalchemy import Column, MetaData, String, Table, select, text, update
from sqlalchemy.engine import Connection

from botmem.stores.sql.engine import Conn
from botmem.stores.sql.schema import UtcDateTime

metadata_v4 = MetaData()

Table(
    "leases",
    metadata_v4,
    Column("name", String, primary_key=True),
    Column("holder", String, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

_INBOX_V3 = Table(
    "inbox",
    MetaData(),
    Column("id"),
    Column("status"),
    Column("payload"),
    Column("kind"),
)


async def leases_and_inbox_kinds(conn: Conn) -> None:
    """Apply migration 4 inside the migration transaction."""

    def create(sync_conn: Connection) -> None:
        metadata_v4.create_all(sync_conn)

    await conn.run_sync(create)
    await conn.execute(
        text("ALTER TABLE inbox ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'message'")
    )
    await _backfill_kinds(conn)


async def _backfill_kinds(conn: Conn) -> None:
    """Unfinished items get their kind from the payload; finished ones are never claimed."""
    unfinished = _INBOX_V3.c.status.in_(("pending", "replied"))
    rows = (await conn.execute(select(_INBOX_V3.c.id, _INBOX_V3.c.payload).where(unfinished))).all()
    for row in rows:
        payload = row.payload if isinstance(row.payload, dict) else {}
        kind = str(payload.get("kind", "message"))
        if kind != "message":
            stmt = update(_INBOX_V3).where(_INBOX_V3.c.id == row.id).values(kind=kind)
            await conn.execute(stmt)
