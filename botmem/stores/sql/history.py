"""SqlHistoryStore: every message of every agent, kept forever (recall memory)."""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from functools import reduce
from typing import Any

from sqlalchemy import case, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Select

from botmem.stores.base import CONVERSATION_ROLES
from botmem.stores.sql.engine import Database
from botmem.stores.sql.schema import messages
from botmem.types import AgentKey, Message, ToolCall


def _message(row: Any) -> Message:
    calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in row.tool_calls or ())
    return Message(
        id=row.id,
        agent_key=row.agent_key,
        turn_id=row.turn_id,
        role=row.role,
        content=row.content,
        tool_calls=calls,
        tool_call_id=row.tool_call_id,
        name=row.name,
        tokens=row.tokens,
        created_at=row.created_at,
    )


def _values(message: Message) -> dict[str, Any]:
    return {
        "agent_key": message.agent_key,
        "turn_id": message.turn_id,
        "role": message.role,
        "content": message.content,
        "spoken": message.spoken,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
        ],
        "tool_call_id": message.tool_call_id,
        "name": message.name,
        "tokens": message.tokens,
        "created_at": message.created_at,
    }


def query_words(query: str) -> list[str]:
    """The distinct lowercase words of a search query, punctuation dropped, in order."""
    return list(dict.fromkeys(re.findall(r"\w+", query.lower())))


def word_search(agent_key: AgentKey, query: str) -> Select[Any] | None:
    """Portable stand-in for full-text search: messages containing any word of the query,
    ranked by how many distinct words they contain, then newest first.

    None when the query has no words. To be replaced by FTS5 / tsvector ranking.
    """
    words = query_words(query)
    if not words:
        return None
    content = func.lower(messages.c.spoken)
    hits = [content.contains(word, autoescape=True) for word in words]
    score = reduce(operator.add, [case((hit, 1), else_=0) for hit in hits])
    return (
        select(messages)
        .where(
            messages.c.agent_key == agent_key,
            messages.c.role.in_(CONVERSATION_ROLES),
            messages.c.spoken != "",
            or_(*hits),
        )
        .order_by(score.desc(), messages.c.created_at.desc(), messages.c.id.desc())
    )


class SqlHistoryStore:
    def __init__(self, db: Database):
        self._db = db

    async def append(self, items: Sequence[Message]) -> list[Message]:
        async def work(conn: AsyncConnection) -> list[Message]:
            stored = []
            for message in items:
                stmt = messages.insert().values(**_values(message)).returning(messages.c.id)
                new_id = (await conn.execute(stmt)).scalar_one()
                stored.append(replace(message, id=new_id))
            return stored

        return await self._db.write(work)

    async def _select(self, query: Select[Any]) -> list[Message]:
        async with self._db.read() as conn:
            return [_message(row) for row in await conn.execute(query)]

    async def since(self, agent_key: AgentKey, first_id: int) -> list[Message]:
        query = select(messages).where(messages.c.agent_key == agent_key, messages.c.id >= first_id)
        return await self._select(query.order_by(messages.c.id))

    async def for_turn(self, agent_key: AgentKey, turn_id: int) -> list[Message]:
        query = select(messages).where(
            messages.c.agent_key == agent_key, messages.c.turn_id == turn_id
        )
        return await self._select(query.order_by(messages.c.id))

    async def count(self, agent_key: AgentKey) -> int:
        query = select(func.count()).select_from(messages)
        async with self._db.read() as conn:
            result = await conn.execute(query.where(messages.c.agent_key == agent_key))
            return int(result.scalar_one())

    async def search(
        self, agent_key: AgentKey, query: str, *, limit: int, offset: int = 0
    ) -> list[Message]:
        found = word_search(agent_key, query)
        if found is None:
            return []
        return await self._select(found.limit(limit).offset(offset))

    async def between(
        self, agent_key: AgentKey, start: datetime, end: datetime, *, limit: int, offset: int = 0
    ) -> list[Message]:
        query = select(messages).where(
            messages.c.agent_key == agent_key,
            messages.c.created_at >= start,
            messages.c.created_at < end,
            messages.c.role.in_(CONVERSATION_ROLES),
        )
        query = query.order_by(messages.c.created_at, messages.c.id).limit(limit).offset(offset)
        return await self._select(query)

    async def delete_agent(self, agent_key: AgentKey) -> None:
        async def work(conn: AsyncConnection) -> None:
            await conn.execute(delete(messages).where(messages.c.agent_key == agent_key))

        await self._db.write(work)
