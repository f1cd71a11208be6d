"""SqlBlockStore: core memory blocks, private or shared, with versioned edits.

An edit reads the block, applies `change` to the current value and writes it under a version
check (``WHERE version = :read_version``); a lost race re-reads and re-applies, so concurrent
edits of a shared block all survive. The read also locks the row where the database can
(``FOR UPDATE`` on Postgres; SQLite write transactions hold the write lock from the start),
which makes conflicts rare; the version check keeps edits correct regardless.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import BindParameter

from botmem.errors import NotFoundError, StoreError
from botmem.stores.base import Clock, apply_change
from botmem.stores.sql.engine import Conn, Database, backoff
from botmem.stores.sql.schema import agent_blocks, block_edits, blocks
from botmem.types import AgentKey, Block, BlockEdit, BlockSpec

EDIT_ATTEMPTS = 50


def _agent_blocks(agent_key: AgentKey | BindParameter[Any]) -> Select[Any]:
    """The agent's blocks, each with the label it has for this agent."""
    return (
        select(blocks, agent_blocks.c.label.label("agent_label"))
        .join(agent_blocks, agent_blocks.c.block_id == blocks.c.id)
        .where(agent_blocks.c.agent_key == agent_key)
    )


_FOR_AGENT = _agent_blocks(bindparam("agent_key")).order_by(
    agent_blocks.c.position, agent_blocks.c.label
)
"""Built once: constructing a statement costs more than running it (called every step)."""


def _block(row: Any) -> Block:
    return Block(
        id=row.id,
        label=row.agent_label,
        value=row.value,
        limit=row.char_limit,
        description=row.description,
        read_only=row.read_only,
        version=row.version,
        shared_name=row.shared_name,
        updated_at=row.updated_at,
    )


def _edit(row: Any) -> BlockEdit:
    return BlockEdit(
        block_id=row.block_id,
        label=row.label,
        old_value=row.old_value,
        new_value=row.new_value,
        version=row.version,
        agent_key=row.agent_key,
        edit_key=row.edit_key,
        created_at=row.created_at,
    )


class SqlBlockStore:
    def __init__(self, db: Database, clock: Clock):
        self._db = db
        self._clock = clock

    async def for_agent(self, agent_key: AgentKey) -> list[Block]:
        async with self._db.read() as conn:
            rows = await conn.execute(_FOR_AGENT, {"agent_key": agent_key})
            return [_block(row) for row in rows]

    async def get(self, agent_key: AgentKey, label: str) -> Block | None:
        query = _agent_blocks(agent_key).where(agent_blocks.c.label == label)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return _block(row) if row else None

    async def attach(
        self, agent_key: AgentKey, spec: BlockSpec, *, shared_name: str | None = None
    ) -> Block:
        existing = await self.get(agent_key, spec.label)
        if existing is not None:
            return existing
        shared_id = await self._shared_block_id(spec, shared_name) if shared_name else None

        async def link(conn: Conn) -> None:
            block_id = shared_id or await self._insert_block(conn, spec, None)
            await self._insert_link(conn, agent_key, spec.label, block_id)

        # A concurrent attach may give the agent this label first; then theirs stands.
        with contextlib.suppress(IntegrityError):
            await self._db.write(link)
        block = await self.get(agent_key, spec.label)
        if block is None:
            raise StoreError(f"block {spec.label!r} of {agent_key!r} vanished while attached")
        return block

    async def _shared_block_id(self, spec: BlockSpec, shared_name: str) -> str:
        """The id of the shared block, created from `spec` by whoever comes first."""
        query = select(blocks.c.id).where(blocks.c.shared_name == shared_name)
        for _ in range(2):
            async with self._db.read() as conn:
                block_id = (await conn.execute(query)).scalar_one_or_none()
            if block_id is not None:
                return str(block_id)
            try:
                return await self._db.write(
                    lambda conn: self._insert_block(conn, spec, shared_name)
                )
            except IntegrityError:
                continue  # created concurrently under the same name: read it
        raise StoreError(f"shared block {shared_name!r} could not be created")

    async def _insert_block(self, conn: Conn, spec: BlockSpec, shared_name: str | None) -> str:
        block_id = uuid.uuid4().hex
        await conn.execute(
            blocks.insert().values(
                id=block_id,
                label=spec.label,
                value=spec.value,
                char_limit=spec.limit,
                description=spec.description,
                read_only=spec.read_only,
                version=1,
                shared_name=shared_name,
                updated_at=self._clock(),
            )
        )
        return block_id

    async def _insert_link(
        self, conn: Conn, agent_key: AgentKey, label: str, block_id: str
    ) -> None:
        last = select(func.max(agent_blocks.c.position)).where(
            agent_blocks.c.agent_key == agent_key
        )
        position = (await conn.execute(last)).scalar()
        await conn.execute(
            agent_blocks.insert().values(
                agent_key=agent_key,
                label=label,
                block_id=block_id,
                position=0 if position is None else position + 1,
            )
        )

    async def detach(self, agent_key: AgentKey, label: str) -> None:
        """Unlink the label; a private block goes with it, a shared one stays for others."""

        async def work(conn: Conn) -> None:
            query = _agent_blocks(agent_key).where(agent_blocks.c.label == label)
            row = (await conn.execute(query)).first()
            if row is None:
                return
            link = and_(agent_blocks.c.agent_key == agent_key, agent_blocks.c.label == label)
            await conn.execute(delete(agent_blocks).where(link))
            if row.shared_name is None:
                await _delete_blocks(conn, [row.id])

        await self._db.write(work)

    async def edit(
        self,
        agent_key: AgentKey,
        label: str,
        change: Callable[[Block], str],
        *,
        edit_key: str | None = None,
    ) -> BlockEdit:
        for attempt in range(EDIT_ATTEMPTS):
            try:
                edit = await self._db.write(
                    lambda conn: self._try_edit(conn, agent_key, label, change, edit_key)
                )
            except IntegrityError:
                if edit_key is None:
                    raise
                edit = None  # the same edit_key committed concurrently: next try returns it
            if edit is not None:
                return edit
            await backoff(attempt)
        raise StoreError(f"block {label!r} of {agent_key!r} kept changing; edit not applied")

    async def _try_edit(
        self,
        conn: Conn,
        agent_key: AgentKey,
        label: str,
        change: Callable[[Block], str],
        edit_key: str | None,
    ) -> BlockEdit | None:
        """One attempt in one transaction; None means the version check lost a race."""
        if edit_key is not None:
            recorded = await _recorded_edit(conn, agent_key, edit_key)
            if recorded is not None:
                return recorded
        query = _agent_blocks(agent_key).where(agent_blocks.c.label == label)
        row = (await conn.execute(query.with_for_update(of=blocks))).first()
        if row is None:
            raise NotFoundError(f"{agent_key!r} has no block {label!r}")
        block = _block(row)
        edit = apply_change(block, agent_key, label, change, edit_key, self._clock())
        unchanged = edit.new_value == edit.old_value
        if unchanged:
            return edit  # nothing to write, nothing to record
        stmt = (
            update(blocks)
            .where(blocks.c.id == block.id, blocks.c.version == block.version)
            .values(value=edit.new_value, version=edit.version, updated_at=edit.created_at)
        )
        if (await conn.execute(stmt)).rowcount == 0:
            return None
        await conn.execute(block_edits.insert().values(**asdict(edit)))
        return edit

    async def edits(
        self, agent_key: AgentKey, label: str | None = None, *, limit: int = 50
    ) -> list[BlockEdit]:
        link = and_(
            agent_blocks.c.block_id == block_edits.c.block_id,
            agent_blocks.c.agent_key == agent_key,
        )
        query = select(block_edits).join(agent_blocks, link)
        if label is not None:
            query = query.where(agent_blocks.c.label == label)
        query = query.order_by(block_edits.c.id.desc()).limit(limit)
        async with self._db.read() as conn:
            return [_edit(row) for row in await conn.execute(query)]

    async def delete_agent(self, agent_key: AgentKey) -> None:
        """Drop private blocks, links to shared ones and the edits this agent made.

        The agent's edits go too (also of shared blocks) so that a new agent under the same
        key never finds an old edit_key and skips a fresh edit.
        """

        async def work(conn: Conn) -> None:
            private = _agent_blocks(agent_key).where(blocks.c.shared_name.is_(None))
            private_ids = [row.id for row in await conn.execute(private)]
            await conn.execute(delete(block_edits).where(block_edits.c.agent_key == agent_key))
            await conn.execute(delete(agent_blocks).where(agent_blocks.c.agent_key == agent_key))
            await _delete_blocks(conn, private_ids)

        await self._db.write(work)


async def _recorded_edit(conn: Conn, agent_key: AgentKey, edit_key: str) -> BlockEdit | None:
    query = select(block_edits).where(
        block_edits.c.agent_key == agent_key, block_edits.c.edit_key == edit_key
    )
    row = (await conn.execute(query)).first()
    return _edit(row) if row else None


async def _delete_blocks(conn: Conn, block_ids: list[str]) -> None:
    """Delete blocks with their edits and links (explicitly: no reliance on cascades)."""
    if not block_ids:
        return
    await conn.execute(delete(block_edits).where(block_edits.c.block_id.in_(block_ids)))
    await conn.execute(delete(agent_blocks).where(agent_blocks.c.block_id.in_(block_ids)))
    await conn.execute(delete(blocks).where(blocks.c.id.in_(block_ids)))
