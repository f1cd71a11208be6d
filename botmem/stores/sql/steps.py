"""SqlStepStore: the prompt size of every LLM call, one row per step."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, bindparam, delete, select

from botmem.stores.sql.engine import Conn, Database
from botmem.stores.sql.schema import steps
from botmem.stores.steps import StepRecord
from botmem.types import AgentKey

# Built once: recording runs every step.
_INSERT = steps.insert()
_LAST = (
    select(steps)
    .where(steps.c.agent_key == bindparam("agent_key"))
    .order_by(steps.c.id.desc())
    .limit(bindparam("limit", type_=Integer))
)


def _step(row: Any) -> StepRecord:
    return StepRecord(
        agent_key=row.agent_key,
        turn_id=row.turn_id,
        created_at=row.created_at,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        summarized=bool(row.summarized),
    )


class SqlStepStore:
    def __init__(self, db: Database):
        self._db = db

    async def record(self, step: StepRecord) -> None:
        values = {
            "agent_key": step.agent_key,
            "turn_id": step.turn_id,
            "created_at": step.created_at,
            "prompt_tokens": step.prompt_tokens,
            "completion_tokens": step.completion_tokens,
            "summarized": step.summarized,
        }

        async def work(conn: Conn) -> None:
            await conn.execute(_INSERT, values)

        await self._db.write(work)

    async def for_agent(self, agent_key: AgentKey, *, limit: int = 500) -> list[StepRecord]:
        if limit <= 0:
            return []  # Postgres rejects a negative LIMIT; SQLite would read it as none
        async with self._db.read() as conn:
            rows = await conn.execute(_LAST, {"agent_key": agent_key, "limit": limit})
            newest_first = [_step(row) for row in rows]
        return newest_first[::-1]

    async def delete_agent(self, agent_key: AgentKey) -> None:
        async def work(conn: Conn) -> None:
            await conn.execute(delete(steps).where(steps.c.agent_key == agent_key))

        await self._db.write(work)
