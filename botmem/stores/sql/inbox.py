"""SqlInboxStore: inbound events stored before they are acknowledged, unique per source."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from botmem.errors import NotFoundError
from botmem.events import InboundMessage
from botmem.stores.base import Clock, InboxItem, InboxStatus
from botmem.stores.sql.engine import Conn, Database
from botmem.stores.sql.schema import inbox, leases
from botmem.types import AgentKey

UNFINISHED: tuple[InboxStatus, ...] = ("pending", "replied")
# Built once: constructing a statement costs more than running it (each runs every turn).
_ADD = inbox.insert().returning(inbox.c.id)
_ITEM = inbox.c.id == bindparam("item_id")
_START = (
    update(inbox)
    .where(_ITEM)
    .values(attempts=inbox.c.attempts + 1, updated_at=bindparam("now"))
    .returning(inbox.c.attempts)
)
_SET = update(inbox).where(_ITEM).returning(inbox.c.id)
"""Sets the columns named by the parameters (status, reply, error, updated_at)."""


def _item(row: Any) -> InboxItem:
    return InboxItem(
        id=row.id,
        inbound=InboundMessage.from_dict(row.payload),
        status=row.status,
        reply=row.reply,
        attempts=row.attempts,
        created_at=row.created_at,
    )


class SqlInboxStore:
    def __init__(self, db: Database, clock: Clock):
        self._db = db
        self._clock = clock

    async def add(self, inbound: InboundMessage) -> int | None:
        now = self._clock()
        values = {
            "source": inbound.source,
            "source_message_id": inbound.message_id,
            "agent_key": inbound.agent_key,
            "payload": inbound.to_dict(),
            "status": "pending",
            "kind": inbound.kind,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }

        async def work(conn: Conn) -> int:
            return int((await conn.execute(_ADD, values)).scalar_one())

        try:
            return await self._db.write(work)
        except IntegrityError:
            return None  # (source, message_id) already stored: a re-delivery

    async def get(self, inbox_id: int) -> InboxItem | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(inbox).where(inbox.c.id == inbox_id))).first()
        return _item(row) if row else None

    async def find(self, source: str, message_id: str) -> InboxItem | None:
        query = select(inbox).where(
            inbox.c.source == source, inbox.c.source_message_id == message_id
        )  # the unique key: one row at most
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return _item(row) if row else None

    async def unfinished(self) -> list[InboxItem]:
        query = select(inbox).where(inbox.c.status.in_(UNFINISHED)).order_by(inbox.c.id)
        async with self._db.read() as conn:
            return [_item(row) for row in await conn.execute(query)]

    async def unfinished_for(self, agent_key: AgentKey) -> list[InboxItem]:
        query = (
            select(inbox)
            .where(inbox.c.agent_key == agent_key, inbox.c.status.in_(UNFINISHED))
            .order_by(inbox.c.id)
        )
        async with self._db.read() as conn:
            return [_item(row) for row in await conn.execute(query)]

    async def claimable(
        self, *, turns: bool, sources: Sequence[str], now: datetime, limit: int
    ) -> list[AgentKey]:
        wanted = []
        if turns:
            wanted.append(and_(inbox.c.status == "pending", inbox.c.kind != "command"))
        if sources:
            answered_here = or_(inbox.c.status == "replied", inbox.c.kind == "command")
            wanted.append(and_(inbox.c.source.in_(list(sources)), answered_here))
        if not wanted:
            return []
        held = (
            select(leases.c.name)
            .where(leases.c.name == inbox.c.agent_key, leases.c.expires_at > now)
            .exists()
        )
        first = func.min(inbox.c.id).label("first")
        query = (
            select(inbox.c.agent_key, first)
            .where(inbox.c.status.in_(UNFINISHED), or_(*wanted), ~held)
            .group_by(inbox.c.agent_key)
            .order_by(first)
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [row.agent_key for row in await conn.execute(query)]

    async def start_attempt(self, inbox_id: int) -> int:
        return int(await self._update(_START, inbox_id, {"now": self._clock()}))

    async def mark_replied(self, inbox_id: int, reply: str | None) -> None:
        await self._set(inbox_id, {"status": "replied", "reply": reply})

    async def mark_delivered(self, inbox_id: int) -> None:
        await self._set(inbox_id, {"status": "delivered"})

    async def mark_failed(self, inbox_id: int, error: str) -> None:
        await self._set(inbox_id, {"status": "failed", "error": error})

    async def _set(self, inbox_id: int, values: dict[str, Any]) -> None:
        await self._update(_SET, inbox_id, {**values, "updated_at": self._clock()})

    async def _update(self, stmt: Any, inbox_id: int, parameters: dict[str, Any]) -> Any:
        """Run an UPDATE ... RETURNING of one item; what it returns, or NotFoundError."""

        async def work(conn: Conn) -> Any:
            result = await conn.execute(stmt, {**parameters, "item_id": inbox_id})
            return result.scalar_one_or_none()

        result = await self._db.write(work)
        if result is None:
            raise NotFoundError(f"no inbox item {inbox_id}")
        return result

    async def delete_agent(self, agent_key: AgentKey) -> None:
        async def work(conn: Conn) -> None:
            await conn.execute(delete(inbox).where(inbox.c.agent_key == agent_key))

        await self._db.write(work)
