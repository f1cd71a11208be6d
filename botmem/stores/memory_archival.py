"""MemoryArchivalStore: archival passages in process memory, same contract as SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from botmem.stores.base import Passage
from botmem.stores.text import bm25_scores, query_terms, words
from botmem.types import AgentKey


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _newest_first(found: list[Passage]) -> list[Passage]:
    return sorted(found, key=lambda p: (p.created_at, p.id or 0), reverse=True)


class MemoryArchivalStore:
    def __init__(self) -> None:
        self._passages: dict[int, Passage] = {}  # in id order
        self._next_id = 1

    async def insert(self, passages: Sequence[Passage]) -> list[Passage]:
        stored = []
        for passage in passages:
            stored.append(
                replace(
                    passage,
                    id=self._next_id,
                    created_at=_as_utc(passage.created_at),
                    tags=tuple(passage.tags),
                    source_message_ids=tuple(passage.source_message_ids),
                )
            )
            self._next_id += 1
        self._passages.update((p.id or 0, p) for p in stored)
        return stored

    async def get_many(self, agent_key: AgentKey, ids: Sequence[int]) -> list[Passage]:
        found = (self._passages.get(i) for i in ids)
        return [p for p in found if p is not None and p.agent_key == agent_key]

    def _filtered(
        self,
        agent_key: AgentKey,
        tags: Sequence[str] | None,
        start: datetime | None,
        end: datetime | None,
    ) -> list[Passage]:
        wanted = set(tags or ())
        return [
            p
            for p in self._passages.values()
            if p.agent_key == agent_key
            and wanted.issubset(p.tags)
            and (start is None or p.created_at >= _as_utc(start))
            and (end is None or p.created_at < _as_utc(end))
        ]

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
        candidates = _newest_first(self._filtered(agent_key, tags, start, end))
        scores = bm25_scores([words(p.text) for p in candidates], query_terms(query))
        hits = [
            (score, rank, p) for rank, (score, p) in enumerate(zip(scores, candidates, strict=True))
        ]
        # Best score first; among equal scores keep newest-first order (a stable sort).
        hits.sort(key=lambda hit: (-hit[0], hit[1]))
        return [(p, score) for score, _, p in hits if score > 0][:limit]

    async def select(
        self,
        agent_key: AgentKey,
        *,
        limit: int,
        tags: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Passage]:
        return _newest_first(self._filtered(agent_key, tags, start, end))[:limit]

    async def count(self, agent_key: AgentKey) -> int:
        return sum(p.agent_key == agent_key for p in self._passages.values())

    async def delete(self, agent_key: AgentKey, passage_id: int) -> bool:
        passage = self._passages.get(passage_id)
        if passage is None or passage.agent_key != agent_key:
            return False
        del self._passages[passage_id]
        return True

    async def delete_agent(self, agent_key: AgentKey) -> None:
        for passage_id in [i for i, p in self._passages.items() if p.agent_key == agent_key]:
            del self._passages[passage_id]
