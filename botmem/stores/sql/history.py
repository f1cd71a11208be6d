"""SqlHistoryStore: every message of every agent, kept forever (recall memory).

Each message said is stored with its context (stores/text.py `contexts`): what the agent's
previous message said, which full-text search matches too, weighted less."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Date,
    bindparam,
    cast,
    delete,
    false,
    func,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.elements import BindParameter

from botmem.stores.base import CONVERSATION_ROLES
from botmem.stores.sql.engine import Conn, Database
from botmem.stores.sql.fulltext import FullText
from botmem.stores.sql.schema import messages
from botmem.stores.text import CONTEXT_WEIGHT, contexts, is_said, query_terms
from botmem.types import AgentKey, Message, ToolCall

_FULLTEXT = FullText(messages, "messages_fts", weights=(1.0, CONTEXT_WEIGHT))
ID_CHUNK = 500
"""Ids per IN (...) list: far below every driver's bound-parameter limit."""


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


def _values(message: Message, context: str) -> dict[str, Any]:
    return {
        "agent_key": message.agent_key,
        "turn_id": message.turn_id,
        "role": message.role,
        "content": message.content,
        "spoken": message.spoken,
        "context": context,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
        ],
        "tool_call_id": message.tool_call_id,
        "name": message.name,
        "tokens": message.tokens,
        "created_at": message.created_at,
        # Marked done up front when there is nothing to embed: keeps the unindexed index small.
        "indexed": not is_said(message),
    }


def chunks(ids: Sequence[int]) -> list[list[int]]:
    unique = list(dict.fromkeys(ids))
    return [unique[i : i + ID_CHUNK] for i in range(0, len(unique), ID_CHUNK)]


def unindexed_query(limit: int) -> Select[Any]:
    """Messages waiting for a vector, oldest first. `indexed == false()` renders as a
    literal, as in the partial index ix_messages_unindexed, so the databases can use it."""
    return (
        select(messages)
        .where(
            messages.c.indexed == false(),
            messages.c.role.in_(CONVERSATION_ROLES),
            messages.c.spoken != "",
        )
        .order_by(messages.c.id)
        .limit(limit)
    )


# Built once: constructing a statement costs more than running it (these run every step).
_AGENT: BindParameter[str] = bindparam("agent_key")
_LAST_SAID = (
    select(messages.c.spoken)
    .where(
        messages.c.agent_key == _AGENT,
        messages.c.role.in_(CONVERSATION_ROLES),
        messages.c.spoken != "",
    )
    .order_by(messages.c.id.desc())
    .limit(1)
)
_SINCE = (
    select(messages)
    .where(messages.c.agent_key == _AGENT, messages.c.id >= bindparam("first_id"))
    .order_by(messages.c.id)
)
_FOR_TURN = (
    select(messages)
    .where(messages.c.agent_key == _AGENT, messages.c.turn_id == bindparam("turn_id"))
    .order_by(messages.c.id)
)
_INSERT = messages.insert().returning(messages.c.id)
_COUNT = select(func.count()).select_from(messages).where(messages.c.agent_key == _AGENT)


def _utc_day(sqlite: bool) -> ColumnElement[Any]:
    """The UTC day of a message's created_at. SQLite keeps it as UTC text
    ('YYYY-MM-DD HH:MM:SS...'), whose date() is that day as text; PostgreSQL has a timestamptz,
    read in UTC whatever the session's time zone."""
    if sqlite:
        return func.date(messages.c.created_at)
    # A literal, not a parameter: GROUP BY and ORDER BY must repeat the very same expression.
    utc: ColumnElement[str] = literal_column("'UTC'")
    return cast(func.timezone(utc, messages.c.created_at), Date)


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


async def _last_said(conn: Conn, items: Sequence[Message]) -> dict[AgentKey, str]:
    """What each agent with a message said in `items` last said before them."""
    found = {}
    for agent_key in dict.fromkeys(m.agent_key for m in items if is_said(m)):
        spoken = (await conn.execute(_LAST_SAID, {"agent_key": agent_key})).scalar_one_or_none()
        if spoken is not None:
            found[agent_key] = spoken
    return found


class SqlHistoryStore:
    def __init__(self, db: Database):
        self._db = db

    async def append(self, items: Sequence[Message]) -> list[Message]:
        async def work(conn: Conn) -> list[Message]:
            stored = []
            found = contexts(items, await _last_said(conn, items))
            for message, context in zip(items, found, strict=True):
                new_id = (await conn.execute(_INSERT, _values(message, context))).scalar_one()
                stored.append(replace(message, id=new_id))
            return stored

        return await self._db.write(work)

    async def _select(
        self, query: Select[Any], parameters: dict[str, Any] | None = None
    ) -> list[Message]:
        async with self._db.read() as conn:
            return [_message(row) for row in await conn.execute(query, parameters)]

    async def since(self, agent_key: AgentKey, first_id: int) -> list[Message]:
        return await self._select(_SINCE, {"agent_key": agent_key, "first_id": first_id})

    async def for_turn(self, agent_key: AgentKey, turn_id: int) -> list[Message]:
        return await self._select(_FOR_TURN, {"agent_key": agent_key, "turn_id": turn_id})

    async def count(self, agent_key: AgentKey) -> int:
        async with self._db.read() as conn:
            result = await conn.execute(_COUNT, {"agent_key": agent_key})
            return int(result.scalar_one())

    async def search(
        self, agent_key: AgentKey, query: str, *, limit: int, offset: int = 0
    ) -> list[tuple[Message, float]]:
        terms = query_terms(query)
        if not terms:
            return []
        own = select(messages).where(
            messages.c.agent_key == agent_key, messages.c.role.in_(CONVERSATION_ROLES)
        )
        ranked = _FULLTEXT.match(own, terms, sqlite=self._db.sqlite)
        ranked = ranked.order_by(messages.c.created_at.desc(), messages.c.id.desc())
        async with self._db.read() as conn:
            rows = await conn.execute(ranked.limit(limit).offset(offset))
            return [(_message(row), float(row.score)) for row in rows]

    async def get_many(self, agent_key: AgentKey, ids: Sequence[int]) -> list[Message]:
        found: dict[int, Message] = {}
        for chunk in chunks(ids):
            query = select(messages).where(
                messages.c.agent_key == agent_key, messages.c.id.in_(chunk)
            )
            found.update((m.id or 0, m) for m in await self._select(query))
        return [found[i] for i in ids if i in found]

    async def unindexed(self, *, limit: int) -> list[Message]:
        return await self._select(unindexed_query(limit))

    async def mark_indexed(self, ids: Sequence[int]) -> None:
        async def work(conn: Conn) -> None:
            for chunk in chunks(ids):
                stmt = update(messages).where(messages.c.id.in_(chunk)).values(indexed=true())
                await conn.execute(stmt)

        await self._db.write(work)

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

    async def per_day(self, since: datetime) -> list[tuple[date, int]]:
        day = _utc_day(self._db.sqlite).label("day")
        query = (
            select(day, func.count().label("messages"))
            .where(messages.c.created_at >= since, messages.c.role.in_(CONVERSATION_ROLES))
            .group_by(day)
            .order_by(day)
        )
        async with self._db.read() as conn:
            return [(_as_date(row.day), int(row.messages)) for row in await conn.execute(query)]

    async def delete_agent(self, agent_key: AgentKey) -> None:
        async def work(conn: Conn) -> None:
            await conn.execute(delete(messages).where(messages.c.agent_key == agent_key))

        await self._db.write(work)
