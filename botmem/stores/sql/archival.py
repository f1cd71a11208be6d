"""SqlArchivalStore: archival passages' text, tags and dates (their vectors live elsewhere).

Tags are kept twice: in order on the passage (the JSON ``tags`` column, what callers get
back) and one row per distinct tag in ``passage_tags``, which is what filters query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.sql import Select

from botmem.stores.base import Passage
from botmem.stores.sql.engine import Conn, Database
from botmem.stores.sql.fulltext import FullText
from botmem.stores.sql.history import chunks
from botmem.stores.sql.schema import passage_tags, passages
from botmem.stores.text import query_terms
from botmem.types import AgentKey

_FULLTEXT = FullText(passages, "passages_fts")


def _passage(row: Any) -> Passage:
    return Passage(
        id=row.id,
        agent_key=row.agent_key,
        text=row.text,
        created_at=row.created_at,
        tags=tuple(row.tags or ()),
        source_message_ids=tuple(row.source_message_ids or ()),
    )


def _values(passage: Passage) -> dict[str, Any]:
    return {
        "agent_key": passage.agent_key,
        "text": passage.text,
        "tags": list(passage.tags),
        "source_message_ids": list(passage.source_message_ids),
        "created_at": passage.created_at,
    }


def _filtered(
    agent_key: AgentKey,
    tags: Sequence[str] | None,
    start: datetime | None,
    end: datetime | None,
) -> Select[Any]:
    """The agent's passages having ALL `tags`, with start <= created_at < end."""
    query = select(passages).where(passages.c.agent_key == agent_key)
    for tag in dict.fromkeys(tags or ()):
        query = query.where(
            exists().where(passage_tags.c.passage_id == passages.c.id, passage_tags.c.tag == tag)
        )
    if start is not None:
        query = query.where(passages.c.created_at >= start)
    if end is not None:
        query = query.where(passages.c.created_at < end)
    return query


def _newest_first(query: Select[Any]) -> Select[Any]:
    return query.order_by(passages.c.created_at.desc(), passages.c.id.desc())


class SqlArchivalStore:
    def __init__(self, db: Database):
        self._db = db

    async def insert(self, items: Sequence[Passage]) -> list[Passage]:
        async def work(conn: Conn) -> list[Passage]:
            stored = []
            for passage in items:
                stmt = passages.insert().values(**_values(passage)).returning(passages.c.id)
                new_id = (await conn.execute(stmt)).scalar_one()
                tag_rows = [{"passage_id": new_id, "tag": t} for t in dict.fromkeys(passage.tags)]
                if tag_rows:
                    await conn.execute(passage_tags.insert(), tag_rows)
                stored.append(replace(passage, id=new_id))
            return stored

        return await self._db.write(work)

    async def _select(self, query: Select[Any]) -> list[Passage]:
        async with self._db.read() as conn:
            return [_passage(row) for row in await conn.execute(query)]

    async def get_many(self, agent_key: AgentKey, ids: Sequence[int]) -> list[Passage]:
        found: dict[int, Passage] = {}
        for chunk in chunks(ids):
            query = select(passages).where(
                passages.c.agent_key == agent_key, passages.c.id.in_(chunk)
            )
            found.update((p.id or 0, p) for p in await self._select(query))
        return [found[i] for i in ids if i in found]

    async def search(
        self,
        agent_key: AgentKey,
        query: str,
        *,
        limit: int,
        tags: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[tuple[Passage, float]]:
        terms = query_terms(query)
        if not terms:
            return []
        own = _filtered(agent_key, tags, start, end)
        ranked = _newest_first(_FULLTEXT.match(own, terms, sqlite=self._db.sqlite))
        async with self._db.read() as conn:
            rows = await conn.execute(ranked.limit(limit))
            return [(_passage(row), float(row.score)) for row in rows]

    async def select(
        self,
        agent_key: AgentKey,
        *,
        limit: int,
        tags: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Passage]:
        query = _newest_first(_filtered(agent_key, tags, start, end))
        return await self._select(query.limit(limit))

    async def count(self, agent_key: AgentKey) -> int:
        query = select(func.count()).select_from(passages)
        async with self._db.read() as conn:
            result = await conn.execute(query.where(passages.c.agent_key == agent_key))
            return int(result.scalar_one())

    async def delete(self, agent_key: AgentKey, passage_id: int) -> bool:
        async def work(conn: Conn) -> bool:
            owned = select(passages.c.id).where(
                passages.c.agent_key == agent_key, passages.c.id == passage_id
            )
            return await _delete_passages(conn, owned) > 0

        return await self._db.write(work)

    async def delete_agent(self, agent_key: AgentKey) -> None:
        async def work(conn: Conn) -> None:
            owned = select(passages.c.id).where(passages.c.agent_key == agent_key)
            await _delete_passages(conn, owned)

        await self._db.write(work)


async def _delete_passages(conn: Conn, ids: Select[Any]) -> int:
    """Delete the passages `ids` selects, tags first (not left to the FK cascade, which
    depends on SQLite's foreign_keys pragma); returns how many passages went."""
    await conn.execute(delete(passage_tags).where(passage_tags.c.passage_id.in_(ids)))
    result = await conn.execute(delete(passages).where(passages.c.id.in_(ids)))
    return int(result.rowcount)
