"""SqlAgentStore: one row per agent (summary, context start, activity)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError

from botmem.errors import NotFoundError
from botmem.stores.base import Clock, merge_metadata
from botmem.stores.sql.engine import Conn, Database
from botmem.stores.sql.schema import agents
from botmem.types import AgentKey, AgentState


def _state(row: Any) -> AgentState:
    return AgentState(
        agent_key=row.agent_key,
        created_at=row.created_at,
        last_active_at=row.last_active_at,
        summary=row.summary,
        summary_at=row.summary_at,
        context_start_id=row.context_start_id,
        metadata=dict(row.metadata or {}),
    )


# Built once: constructing a statement costs more than running it (these run every step).
_GET = select(agents).where(agents.c.agent_key == bindparam("agent_key"))
_SET = update(agents).where(agents.c.agent_key == bindparam("key"))
"""Sets the columns named by the parameters."""


class SqlAgentStore:
    def __init__(self, db: Database, clock: Clock):
        self._db = db
        self._clock = clock

    async def get(self, agent_key: AgentKey) -> AgentState | None:
        async with self._db.read() as conn:
            row = (await conn.execute(_GET, {"agent_key": agent_key})).first()
        return _state(row) if row else None

    async def ensure(self, agent_key: AgentKey) -> tuple[AgentState, bool]:
        existing = await self.get(agent_key)
        if existing is not None:
            return existing, False
        created = True
        try:
            await self._db.write(lambda conn: self._insert(conn, agent_key))
        except IntegrityError:
            created = False  # a concurrent ensure inserted it first
        state = await self.get(agent_key)
        if state is None:
            raise NotFoundError(f"agent {agent_key!r} vanished while being created")
        return state, created

    async def _insert(self, conn: Conn, agent_key: AgentKey) -> None:
        await conn.execute(
            agents.insert().values(
                agent_key=agent_key,
                created_at=self._clock(),
                summary="",
                context_start_id=0,
                metadata={},
            )
        )

    async def save_summary(self, agent_key: AgentKey, summary: str, context_start_id: int) -> None:
        values = {
            "summary": summary,
            "summary_at": self._clock(),
            "context_start_id": context_start_id,
        }
        await self._update(agent_key, values)

    async def touch(self, agent_key: AgentKey) -> None:
        await self._update(agent_key, {"last_active_at": self._clock()})

    async def set_metadata(self, agent_key: AgentKey, values: dict[str, Any]) -> None:
        async def work(conn: Conn) -> int:
            query = select(agents.c.metadata).where(agents.c.agent_key == agent_key)
            current = (await conn.execute(query.with_for_update())).scalar_one_or_none()
            if current is None:
                return 0
            merged = merge_metadata(current or {}, values)
            stmt = update(agents).where(agents.c.agent_key == agent_key).values(metadata=merged)
            return (await conn.execute(stmt)).rowcount

        if await self._db.write(work) == 0:
            raise NotFoundError(f"no agent {agent_key!r}")

    async def _update(self, agent_key: AgentKey, values: dict[str, Any]) -> None:
        async def work(conn: Conn) -> int:
            return (await conn.execute(_SET, {**values, "key": agent_key})).rowcount

        if await self._db.write(work) == 0:
            raise NotFoundError(f"no agent {agent_key!r}")

    async def all(self) -> list[AgentState]:
        async with self._db.read() as conn:
            rows = await conn.execute(select(agents).order_by(agents.c.agent_key))
            return [_state(row) for row in rows]

    async def delete(self, agent_key: AgentKey) -> None:
        async def work(conn: Conn) -> None:
            await conn.execute(delete(agents).where(agents.c.agent_key == agent_key))

        await self._db.write(work)
