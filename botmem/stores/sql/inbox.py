"""SqlInboxStore: inbound events stored before they are acknowledged, unique per source."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from botmem.errors import NotFoundError
from botmem.events import InboundMessage
from botmem.stores.base import Clock, InboxItem, InboxStatus
from botmem.stores.sql.engine import Conn, Database
from botmem.stores.sql.schema import inbox
from botmem.types import AgentKey

UNFINISHED: tuple[InboxStatus, ...] = ("pending", "replied")


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
        stmt = (
            inbox.insert()
            .values(
                source=inbound.source,
                source_message_id=inbound.message_id,
                agent_key=inbound.agent_key,
                payload=inbound.to_dict(),
                status="pending",
                attempts=0,
                created_at=now,
                updated_at=now,
            )
            .returning(inbox.c.id)
        )

        async def work(conn: Conn) -> int:
            return int((await conn.execute(stmt)).scalar_one())

        try:
            return await self._db.write(work)
        except IntegrityError:
            return None  # (source, message_id) already stored: a re-delivery

    async def get(self, inbox_id: int) -> InboxItem | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(inbox).where(inbox.c.id == inbox_id))).first()
        return _item(row) if row else None

    async def unfinished(self) -> list[InboxItem]:
        query = select(inbox).where(inbox.c.status.in_(UNFINISHED)).order_by(inbox.c.id)
        async with self._db.read() as conn:
            return [_item(row) for row in await conn.execute(query)]

    async def start_attempt(self, inbox_id: int) -> int:
        attempts = await self._update(
            inbox_id, {"attempts": inbox.c.attempts + 1}, returning=inbox.c.attempts
        )
        return int(attempts)

    async def mark_replied(self, inbox_id: int, reply: str | None) -> None:
        await self._update(inbox_id, {"status": "replied", "reply": reply})

    async def mark_delivered(self, inbox_id: int) -> None:
        await self._update(inbox_id, {"status": "delivered"})

    async def mark_failed(self, inbox_id: int, error: str) -> None:
        await self._update(inbox_id, {"status": "failed", "error": error})

    async def _update(
        self, inbox_id: int, values: dict[str, Any], *, returning: Any = inbox.c.id
    ) -> Any:
        """Update one item (stamping updated_at); returns `returning` of the updated row."""
        stmt = (
            update(inbox)
            .where(inbox.c.id == inbox_id)
            .values(**values, updated_at=self._clock())
            .returning(returning)
        )

        async def work(conn: Conn) -> Any:
            return (await conn.execute(stmt)).scalar_one_or_none()

        result = await self._db.write(work)
        if result is None:
            raise NotFoundError(f"no inbox item {inbox_id}")
        return result

    async def delete_agent(self, agent_key: AgentKey) -> None:
        async def work(conn: Conn) -> None:
            await conn.execute(delete(inbox).where(inbox.c.agent_key == agent_key))

        await self._db.write(work)
