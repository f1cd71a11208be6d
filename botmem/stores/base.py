"""Store protocols. One SQL implementation (stores/sql) and one in-memory (stores/memory).

Every method is its own transaction. Timestamps are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

from botmem.embeddings.base import Vectors
from botmem.errors import NotFoundError, StoreError
from botmem.events import InboundMessage
from botmem.stores.jobs import JobStore
from botmem.stores.leases import LeaseStore, MemoryLeaseStore
from botmem.stores.steps import MemoryStepStore, StepStore
from botmem.types import AgentKey, AgentState, Block, BlockEdit, BlockSpec, Message

Clock = Callable[[], datetime]
InboxStatus = Literal["pending", "replied", "delivered", "failed"]
CONVERSATION_ROLES = ("user", "assistant")
"""What searches return: what was said, not tool traffic."""


class AgentStore(Protocol):
    async def get(self, agent_key: AgentKey) -> AgentState | None: ...

    async def ensure(self, agent_key: AgentKey) -> tuple[AgentState, bool]:
        """Return the agent, creating it if missing; the flag says whether it was created."""
        ...

    async def save_summary(self, agent_key: AgentKey, summary: str, context_start_id: int) -> None:
        """Store a new recursive summary; messages before `context_start_id` leave the context."""
        ...

    async def touch(self, agent_key: AgentKey) -> None:
        """Set last_active_at to now."""
        ...

    async def set_metadata(self, agent_key: AgentKey, values: dict[str, Any]) -> None:
        """Merge `values` into the agent's metadata (a None value removes the key)."""
        ...

    async def all(self) -> list[AgentState]: ...

    async def delete(self, agent_key: AgentKey) -> None: ...


class BlockStore(Protocol):
    async def for_agent(self, agent_key: AgentKey) -> list[Block]:
        """The agent's blocks (private and shared) in the order they were attached."""
        ...

    async def get(self, agent_key: AgentKey, label: str) -> Block | None: ...

    async def attach(
        self, agent_key: AgentKey, spec: BlockSpec, *, shared_name: str | None = None
    ) -> Block:
        """Give the agent a block under `spec.label`. Idempotent.

        Private (no `shared_name`): created from `spec` unless the agent has that label.
        Shared: the block named `shared_name` is created from `spec` the first time and
        linked to every agent that attaches it afterwards.
        """
        ...

    async def detach(self, agent_key: AgentKey, label: str) -> None: ...

    async def edit(
        self,
        agent_key: AgentKey,
        label: str,
        change: Callable[[Block], str],
        *,
        edit_key: str | None = None,
    ) -> BlockEdit:
        """Apply `change` to the block's *current* value and store the result.

        The write happens under a version check; on a conflict the current value is read again
        and `change` re-applied, so concurrent edits from many agents all survive. `change` may
        raise (e.g. ToolError); then nothing is written. An edit with an `edit_key` already
        recorded for this agent is not applied again: the recorded edit is returned. Every
        applied edit is kept in the block's history. Raises NotFoundError for a missing label.
        """
        ...

    async def edits(
        self, agent_key: AgentKey, label: str | None = None, *, limit: int = 50
    ) -> list[BlockEdit]:
        """Recorded edits of the agent's blocks, newest first."""
        ...

    async def delete_agent(self, agent_key: AgentKey) -> None:
        """Drop the agent's private blocks and its links to shared ones."""
        ...

    # --- by id (the HTTP API's /v1/blocks): a Block's `label` here is the block's own ---

    async def by_id(self, block_id: str) -> Block | None: ...

    async def shared(self, label: str | None = None) -> list[Block]:
        """Every shared block (optionally only those with this label), oldest first."""
        ...

    async def create_shared(self, spec: BlockSpec) -> Block:
        """A new shared block attached to no agent yet, named by its id."""
        ...

    async def update(
        self,
        block_id: str,
        *,
        limit: int | None = None,
        description: str | None = None,
        read_only: bool | None = None,
    ) -> Block:
        """Change what is given (not the value: see `edit_by_id`); NotFoundError if missing."""
        ...

    async def edit_by_id(
        self, block_id: str, change: Callable[[Block], str], *, editor: AgentKey
    ) -> BlockEdit:
        """`edit`, for a block named by id: the same version check, retries and history;
        the edit is recorded as made by `editor`. NotFoundError for an unknown id."""
        ...

    async def delete(self, block_id: str) -> bool:
        """Delete the block, detaching it from every agent; False if there is none."""
        ...

    async def agents_of(self, block_id: str) -> list[AgentKey]:
        """The agents the block is attached to, by key."""
        ...

    async def attach_by_id(self, agent_key: AgentKey, block_id: str) -> Block:
        """Attach an existing block to the agent under the block's label; idempotent.

        A private block becomes shared (named by its id): it is no longer one agent's.
        When the agent already has another block under that label, nothing changes and that
        block is returned (the caller compares ids). NotFoundError for an unknown id.
        """
        ...

    async def detach_by_id(self, agent_key: AgentKey, block_id: str) -> bool:
        """Unlink the block from the agent; False if it was not attached.

        Unlike `detach`, the block stays (a private one becomes shared, named by its id), as
        in Letta, where a detached block can be attached again or deleted by id.
        """
        ...


class HistoryStore(Protocol):
    async def append(self, messages: Sequence[Message]) -> list[Message]:
        """Store messages in order, in one transaction; returns them with ids set."""
        ...

    async def since(self, agent_key: AgentKey, first_id: int) -> list[Message]:
        """The agent's messages with id >= first_id, oldest first."""
        ...

    async def for_turn(self, agent_key: AgentKey, turn_id: int) -> list[Message]: ...

    async def count(self, agent_key: AgentKey) -> int: ...

    async def search(
        self, agent_key: AgentKey, query: str, *, limit: int, offset: int = 0
    ) -> list[tuple[Message, float]]:
        """User/assistant messages matching the words of `query`, with their relevance.

        Relevance is BM25 over the message's own words plus, weighted less
        (text.CONTEXT_WEIGHT), the words of the agent's previous message said: higher is
        better, never negative, comparable within one result only. Best first; equal
        scores newest first.
        """
        ...

    async def get_many(self, agent_key: AgentKey, ids: Sequence[int]) -> list[Message]:
        """The agent's messages with these ids, in the order of `ids` (unknown ids skipped)."""
        ...

    async def unindexed(self, *, limit: int) -> list[Message]:
        """User/assistant messages with text whose vectors are not stored yet, oldest first."""
        ...

    async def mark_indexed(self, ids: Sequence[int]) -> None: ...

    async def between(
        self, agent_key: AgentKey, start: datetime, end: datetime, *, limit: int, offset: int = 0
    ) -> list[Message]:
        """User and assistant messages with start <= created_at < end, oldest first."""
        ...

    async def per_day(self, since: datetime) -> list[tuple[date, int]]:
        """How many user and assistant messages all agents have from `since` on, per UTC day,
        oldest first; days without any are left out."""
        ...

    async def delete_agent(self, agent_key: AgentKey) -> None: ...


def is_transient(exc: BaseException) -> bool:
    """A store failure worth trying again later (a locked or full database, a lost
    connection), as opposed to a bug or a missing row."""
    if isinstance(exc, NotFoundError):
        return False
    if isinstance(exc, StoreError):
        return True
    if isinstance(exc, OSError):  # the server cannot be reached (refused, reset, timed out)
        return True
    from sqlalchemy.exc import (  # loaded with the SQL stores
        DBAPIError,
        InterfaceError,
        OperationalError,
    )
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or _transient_sqlstate(exc.orig)
    return False


_TRANSIENT_SQLSTATES = ("08", "53", "57P", "40001", "40P01")
"""PostgreSQL error classes worth a retry: connection exceptions, insufficient resources
("too many clients"), the server shutting down or starting, serialization failures and
deadlocks. asyncpg reports them as plain DBAPIErrors, not OperationalErrors."""


def _transient_sqlstate(orig: BaseException | None) -> bool:
    sqlstate = getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None
    )
    return isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATES)


def log_store_failure(log: logging.Logger, what: str, exc: Exception) -> None:
    """A warning for a database that is down or full; an error with its traceback for
    anything else. For loops that must go on either way: a process that silently stopped
    claiming work or renewing leases would be worse than a noisy one."""
    if is_transient(exc):
        log.warning("%s: %s", what, exc)
    else:
        log.error("%s: %r", what, exc, exc_info=exc)


def merge_metadata(current: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """`current` updated with `values`; None removes a key."""
    merged = {**current, **values}
    return {key: value for key, value in merged.items() if value is not None}


def apply_change(
    block: Block,
    agent_key: AgentKey,
    label: str,
    change: Callable[[Block], str],
    edit_key: str | None,
    now: datetime,
) -> BlockEdit:
    """The edit `change` makes to `block` (same version when it changes nothing)."""
    new_value = change(block)
    unchanged = new_value == block.value
    return BlockEdit(
        block_id=block.id,
        label=label,
        old_value=block.value,
        new_value=new_value,
        version=block.version if unchanged else block.version + 1,
        agent_key=agent_key,
        edit_key=edit_key,
        created_at=now,
    )


@dataclass(frozen=True)
class InboxItem:
    id: int
    inbound: InboundMessage
    status: InboxStatus
    reply: str | None
    attempts: int
    created_at: datetime


class InboxStore(Protocol):
    async def add(self, inbound: InboundMessage) -> int | None:
        """Store an inbound event; returns its id, or None when (source, message_id) is known."""
        ...

    async def get(self, inbox_id: int) -> InboxItem | None: ...

    async def find(self, source: str, message_id: str) -> InboxItem | None:
        """The item stored for this platform message id (finished or not), if any."""
        ...

    async def unfinished(self) -> list[InboxItem]:
        """Items still pending or replied-but-not-delivered, oldest first (replayed at start)."""
        ...

    async def unfinished_for(self, agent_key: AgentKey) -> list[InboxItem]:
        """The agent's items still pending or replied-but-not-delivered, oldest first."""
        ...

    async def claimable(
        self, *, turns: bool, sources: Sequence[str], now: datetime, limit: int
    ) -> list[AgentKey]:
        """Agents, oldest waiting first, with work for a process and no lease live at `now`:
        pending turns (when `turns`), and for `sources` replies to deliver and commands."""
        ...

    async def start_attempt(self, inbox_id: int) -> int:
        """Count one more processing attempt; returns the new count."""
        ...

    async def mark_replied(self, inbox_id: int, reply: str | None) -> None: ...

    async def mark_delivered(self, inbox_id: int) -> None: ...

    async def mark_failed(self, inbox_id: int, error: str) -> None: ...

    async def delete_agent(self, agent_key: AgentKey) -> None: ...


@dataclass(frozen=True)
class Passage:
    """One archival memory: free text the agent (or a consolidation pass) chose to keep."""

    agent_key: AgentKey
    text: str
    created_at: datetime
    tags: tuple[str, ...] = ()
    source_message_ids: tuple[int, ...] = ()
    id: int | None = None


class ArchivalStore(Protocol):
    """Passages' text, tags and dates (the vectors live in a VectorIndex, keyed by passage id)."""

    async def insert(self, passages: Sequence[Passage]) -> list[Passage]:
        """Store passages in one transaction; returns them with ids set."""
        ...

    async def get_many(self, agent_key: AgentKey, ids: Sequence[int]) -> list[Passage]:
        """The agent's passages with these ids, in the order of `ids` (unknown ids skipped)."""
        ...

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
        """Full-text (BM25) matches with their relevance (higher is better, never negative,
        comparable within one result only), best first, filtered like `select`."""
        ...

    async def select(
        self,
        agent_key: AgentKey,
        *,
        limit: int,
        tags: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Passage]:
        """Newest first. `tags`: passages having ALL these tags; start <= created_at < end."""
        ...

    async def count(self, agent_key: AgentKey) -> int: ...

    async def delete(self, agent_key: AgentKey, passage_id: int) -> bool:
        """Delete one of the agent's passages; False if it has no such passage."""
        ...

    async def delete_agent(self, agent_key: AgentKey) -> None: ...


def rows_by_agent(keys: Sequence[tuple[AgentKey, str]]) -> dict[AgentKey, list[int]]:
    """The row numbers of each agent's items in `keys`, in order."""
    rows: dict[AgentKey, list[int]] = {}
    for row, (agent_key, _) in enumerate(keys):
        rows.setdefault(agent_key, []).append(row)
    return rows


class VectorIndex(Protocol):
    """Nearest-neighbour search over vectors, partitioned by agent and by space.

    A space is a kind of item ("messages", "passages"); ids are the items' store ids as text.
    """

    async def upsert(
        self, space: str, agent_key: AgentKey, ids: Sequence[str], vectors: Vectors
    ) -> None: ...

    async def upsert_many(
        self, space: str, keys: Sequence[tuple[AgentKey, str]], vectors: Vectors
    ) -> None:
        """Rows of several agents at once: `keys[i]` is (agent, id) of `vectors[i]`."""
        ...

    async def query(
        self, space: str, agent_key: AgentKey, vector: Vectors, *, limit: int
    ) -> list[tuple[str, float]]:
        """The agent's nearest ids in that space with their cosine distance, nearest first."""
        ...

    async def vectors(self, space: str, agent_key: AgentKey) -> tuple[list[str], Vectors]:
        """All of the agent's ids and vectors in that space (for a cache to search in RAM)."""
        ...

    async def delete(self, space: str, agent_key: AgentKey, ids: Sequence[str]) -> None: ...

    async def delete_agent(self, agent_key: AgentKey) -> None:
        """Drop the agent's vectors in every space."""
        ...

    async def aclose(self) -> None: ...


@dataclass
class Stores:
    agents: AgentStore
    blocks: BlockStore
    history: HistoryStore
    inbox: InboxStore
    archival: ArchivalStore
    vectors: VectorIndex
    jobs: JobStore
    leases: LeaseStore = field(default_factory=MemoryLeaseStore)
    steps: StepStore = field(default_factory=MemoryStepStore)
    close: Callable[[], object] | None = None

    async def aclose(self) -> None:
        await self.vectors.aclose()
        if self.close is not None:
            result = self.close()
            if hasattr(result, "__await__"):
                await result

    async def wipe_agent(self, agent_key: AgentKey) -> None:
        """Forget everything about one agent (blocks, history, state, queued events, jobs,
        steps)."""
        await self.jobs.delete_agent(agent_key)  # first: nothing wakes the agent mid-wipe
        await self.history.delete_agent(agent_key)
        await self.steps.delete_agent(agent_key)
        await self.blocks.delete_agent(agent_key)
        await self.inbox.delete_agent(agent_key)
        await self.archival.delete_agent(agent_key)
        await self.vectors.delete_agent(agent_key)
        await self.agents.delete(agent_key)
