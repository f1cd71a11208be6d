"""In-memory stores: for tests and throwaway bots. Same contract as the SQL stores.

Safe under asyncio without locks because no method awaits between reading and writing its
state: every operation runs to completion before another task can interleave.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from botmem.errors import NotFoundError
from botmem.events import InboundMessage
from botmem.stores.base import (
    CONVERSATION_ROLES,
    Clock,
    InboxItem,
    InboxStatus,
    Stores,
    VectorIndex,
    merge_metadata,
)
from botmem.stores.leases import MemoryLeaseStore
from botmem.stores.memory_archival import MemoryArchivalStore
from botmem.stores.memory_blocks import MemoryBlockStore
from botmem.stores.memory_jobs import MemoryJobStore
from botmem.stores.memory_vectors import MemoryVectorIndex
from botmem.stores.steps import MemoryStepStore
from botmem.stores.text import CONTEXT_WEIGHT, bm25_scores, contexts, is_said, query_terms, words
from botmem.types import AgentKey, AgentState, Message


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    """Aware UTC, as the SQL stores return it; naive values are taken to be UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _copy(state: AgentState) -> AgentState:
    """Callers get copies: mutating a returned state must not change the store."""
    return replace(state, metadata=dict(state.metadata))


class MemoryAgentStore:
    def __init__(self, clock: Clock):
        self._clock = clock
        self._agents: dict[AgentKey, AgentState] = {}

    async def get(self, agent_key: AgentKey) -> AgentState | None:
        state = self._agents.get(agent_key)
        return _copy(state) if state else None

    async def ensure(self, agent_key: AgentKey) -> tuple[AgentState, bool]:
        created = agent_key not in self._agents
        if created:
            self._agents[agent_key] = AgentState(agent_key=agent_key, created_at=self._clock())
        return _copy(self._agents[agent_key]), created

    def _existing(self, agent_key: AgentKey) -> AgentState:
        if agent_key not in self._agents:
            raise NotFoundError(f"no agent {agent_key!r}")
        return self._agents[agent_key]

    async def save_summary(self, agent_key: AgentKey, summary: str, context_start_id: int) -> None:
        state = self._existing(agent_key)
        state.summary = summary
        state.summary_at = self._clock()
        state.context_start_id = context_start_id

    async def touch(self, agent_key: AgentKey) -> None:
        self._existing(agent_key).last_active_at = self._clock()

    async def set_metadata(self, agent_key: AgentKey, values: dict[str, Any]) -> None:
        state = self._existing(agent_key)
        state.metadata = merge_metadata(state.metadata, values)

    async def all(self) -> list[AgentState]:
        return [_copy(self._agents[key]) for key in sorted(self._agents)]

    async def delete(self, agent_key: AgentKey) -> None:
        self._agents.pop(agent_key, None)


def _search(
    found: list[Message], context: dict[int, str], query: str
) -> list[tuple[Message, float]]:
    """What was said ranked by BM25 over the agent's own messages (their words, plus their
    context's words weighted CONTEXT_WEIGHT, each with its own statistics), then newest first."""
    said = [m for m in found if is_said(m)]
    terms = query_terms(query)
    own = bm25_scores([words(m.spoken) for m in said], terms)
    before = bm25_scores([words(context.get(m.id or 0, "")) for m in said], terms)
    scores = [s + CONTEXT_WEIGHT * c for s, c in zip(own, before, strict=True)]
    hits = [(m, score) for score, m in zip(scores, said, strict=True) if score > 0]
    hits.sort(key=lambda hit: (hit[1], hit[0].created_at, hit[0].id or 0), reverse=True)
    return hits


class MemoryHistoryStore:
    def __init__(self) -> None:
        self._messages: list[Message] = []  # in id order
        self._next_id = 1
        self._indexed: set[int] = set()
        self._context: dict[int, str] = {}  # message id -> what the previous one said
        self._last_said: dict[AgentKey, str] = {}

    async def append(self, messages: Sequence[Message]) -> list[Message]:
        stored = []
        for message, context in zip(messages, contexts(messages, self._last_said), strict=True):
            stored.append(
                replace(message, id=self._next_id, created_at=_as_utc(message.created_at))
            )
            self._context[self._next_id] = context
            if is_said(message):
                self._last_said[message.agent_key] = message.spoken
            self._next_id += 1
        self._messages.extend(stored)
        return stored

    def _of(self, agent_key: AgentKey) -> list[Message]:
        return [m for m in self._messages if m.agent_key == agent_key]

    async def since(self, agent_key: AgentKey, first_id: int) -> list[Message]:
        return [m for m in self._of(agent_key) if (m.id or 0) >= first_id]

    async def for_turn(self, agent_key: AgentKey, turn_id: int) -> list[Message]:
        return [m for m in self._of(agent_key) if m.turn_id == turn_id]

    async def count(self, agent_key: AgentKey) -> int:
        return len(self._of(agent_key))

    async def search(
        self, agent_key: AgentKey, query: str, *, limit: int, offset: int = 0
    ) -> list[tuple[Message, float]]:
        return _search(self._of(agent_key), self._context, query)[offset : offset + limit]

    async def get_many(self, agent_key: AgentKey, ids: Sequence[int]) -> list[Message]:
        by_id = {m.id: m for m in self._of(agent_key)}
        return [by_id[i] for i in ids if i in by_id]

    async def unindexed(self, *, limit: int) -> list[Message]:
        waiting = (m for m in self._messages if is_said(m) and m.id not in self._indexed)
        return list(itertools.islice(waiting, max(limit, 0)))

    async def mark_indexed(self, ids: Sequence[int]) -> None:
        self._indexed.update(ids)

    async def between(
        self, agent_key: AgentKey, start: datetime, end: datetime, *, limit: int, offset: int = 0
    ) -> list[Message]:
        start, end = _as_utc(start), _as_utc(end)
        found = [
            m
            for m in self._of(agent_key)
            if start <= m.created_at < end and m.role in CONVERSATION_ROLES
        ]
        found.sort(key=lambda m: (m.created_at, m.id or 0))
        return found[offset : offset + limit]

    async def per_day(self, since: datetime) -> list[tuple[date, int]]:
        start = _as_utc(since)
        days = Counter(
            m.created_at.date()  # stored in UTC
            for m in self._messages
            if m.created_at >= start and m.role in CONVERSATION_ROLES
        )
        return sorted(days.items())

    async def delete_agent(self, agent_key: AgentKey) -> None:
        for message in self._of(agent_key):
            self._context.pop(message.id or 0, None)
        self._messages = [m for m in self._messages if m.agent_key != agent_key]
        self._last_said.pop(agent_key, None)


@dataclass
class _InboxRow:
    inbound: InboundMessage
    status: InboxStatus
    created_at: datetime
    reply: str | None = None
    attempts: int = 0
    error: str | None = None


class MemoryInboxStore:
    def __init__(self, clock: Clock, leases: MemoryLeaseStore | None = None):
        self._clock = clock
        self._leases = leases or MemoryLeaseStore()
        self._rows: dict[int, _InboxRow] = {}  # in id order
        self._seen: set[tuple[str, str]] = set()
        self._next_id = 1

    async def add(self, inbound: InboundMessage) -> int | None:
        key = (inbound.source, inbound.message_id)
        if key in self._seen:
            return None
        self._seen.add(key)
        inbox_id, self._next_id = self._next_id, self._next_id + 1
        # Round-trip through the stored form, as SQL does: later mutation of `extra` is not seen.
        stored = InboundMessage.from_dict(inbound.to_dict())
        self._rows[inbox_id] = _InboxRow(stored, "pending", self._clock())
        return inbox_id

    def _item(self, inbox_id: int, row: _InboxRow) -> InboxItem:
        return InboxItem(inbox_id, row.inbound, row.status, row.reply, row.attempts, row.created_at)

    def _row(self, inbox_id: int) -> _InboxRow:
        if inbox_id not in self._rows:
            raise NotFoundError(f"no inbox item {inbox_id}")
        return self._rows[inbox_id]

    async def get(self, inbox_id: int) -> InboxItem | None:
        row = self._rows.get(inbox_id)
        return self._item(inbox_id, row) if row else None

    async def find(self, source: str, message_id: str) -> InboxItem | None:
        for inbox_id, row in self._rows.items():
            if (row.inbound.source, row.inbound.message_id) == (source, message_id):
                return self._item(inbox_id, row)
        return None

    async def unfinished(self) -> list[InboxItem]:
        return [
            self._item(inbox_id, row)
            for inbox_id, row in self._rows.items()
            if row.status in ("pending", "replied")
        ]

    async def unfinished_for(self, agent_key: AgentKey) -> list[InboxItem]:
        return [item for item in await self.unfinished() if item.inbound.agent_key == agent_key]

    async def claimable(
        self, *, turns: bool, sources: Sequence[str], now: datetime, limit: int
    ) -> list[AgentKey]:
        found: list[AgentKey] = []
        for item in await self.unfinished():
            key, kind = item.inbound.agent_key, item.inbound.kind
            turn = turns and item.status == "pending" and kind != "command"
            answered_here = item.status == "replied" or kind == "command"
            here = item.inbound.source in sources and answered_here
            if (turn or here) and key not in found and not self._leases.live(key, now):
                found.append(key)
        return found[:limit]

    async def start_attempt(self, inbox_id: int) -> int:
        row = self._row(inbox_id)
        row.attempts += 1
        return row.attempts

    async def mark_replied(self, inbox_id: int, reply: str | None) -> None:
        row = self._row(inbox_id)
        row.status, row.reply = "replied", reply

    async def mark_delivered(self, inbox_id: int) -> None:
        self._row(inbox_id).status = "delivered"

    async def mark_failed(self, inbox_id: int, error: str) -> None:
        row = self._row(inbox_id)
        row.status, row.error = "failed", error

    async def delete_agent(self, agent_key: AgentKey) -> None:
        for inbox_id, row in list(self._rows.items()):
            if row.inbound.agent_key == agent_key:
                del self._rows[inbox_id]
                self._seen.discard((row.inbound.source, row.inbound.message_id))


def memory_stores(clock: Clock | None = None, vectors: VectorIndex | None = None) -> Stores:
    """Fresh, empty in-memory stores sharing one clock (and a MemoryVectorIndex unless
    another index is given)."""
    now = clock or _utc_now
    leases = MemoryLeaseStore()
    return Stores(
        agents=MemoryAgentStore(now),
        blocks=MemoryBlockStore(now),
        history=MemoryHistoryStore(),
        inbox=MemoryInboxStore(now, leases),
        archival=MemoryArchivalStore(),
        vectors=vectors if vectors is not None else MemoryVectorIndex(),
        jobs=MemoryJobStore(now),
        leases=leases,
        steps=MemoryStepStore(),
    )
