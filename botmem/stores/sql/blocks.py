"""SqlBlockStore: core memory blocks, private or shared, with versioned edits, addressed by
agent and label (the agent's loop) or by id (the HTTP API).

An edit reads the block, applies `change` to the current value and writes it under a version
check (``WHERE version = :read_version``); a lost race re-reads and re-applies, so concurrent
edits of a shared block all survive. The read also locks the row where the database can
(``FOR UPDATE`` on Postgres; SQLite write transactions hold the write lock from the start),
which makes conflicts rare; the version check keeps edits correct regardless.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import BindParameter

from botmem.errors import NotFoundError, StoreError
from botmem.stores.base import Clock, apply_change
from botmem.stores.block_ids import new_block_id
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


def _one_block(block_id: str) -> Select[Any]:
    """A block by id, with its own label where `_agent_blocks` has the agent's."""
    return select(blocks, blocks.c.label.label("agent_label")).where(blocks.c.id == block_id)


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

    async def _insert_block(
        self, conn: Conn, spec: BlockSpec, shared_name: str | None, *, by_id: bool = False
    ) -> str:
        """Insert a block; `by_id` names a shared block by its own id."""
        now = self._clock()
        block_id = new_block_id(now)
        await conn.execute(
            blocks.insert().values(
                id=block_id,
                label=spec.label,
                value=spec.value,
                char_limit=spec.limit,
                description=spec.description,
                read_only=spec.read_only,
                version=1,
                shared_name=block_id if by_id else shared_name,
                updated_at=now,
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
        query = _agent_blocks(agent_key).where(agent_blocks.c.label == label)
        missing = f"{agent_key!r} has no block {label!r}"
        return await self._edit(query, missing, agent_key, change, edit_key)

    async def _edit(
        self,
        query: Select[Any],
        missing: str,
        agent_key: AgentKey,
        change: Callable[[Block], str],
        edit_key: str | None,
    ) -> BlockEdit:
        """Edit the block `query` finds (NotFoundError(`missing`) if none), until it sticks."""
        for attempt in range(EDIT_ATTEMPTS):
            try:
                edit = await self._db.write(
                    lambda conn: self._try_edit(conn, query, missing, agent_key, change, edit_key)
                )
            except IntegrityError:
                if edit_key is None:
                    raise
                edit = None  # the same edit_key committed concurrently: next try returns it
            if edit is not None:
                return edit
            await backoff(attempt)
        raise StoreError(f"the block kept changing; the edit by {agent_key!r} was not applied")

    async def _try_edit(
        self,
        conn: Conn,
        query: Select[Any],
        missing: str,
        agent_key: AgentKey,
        change: Callable[[Block], str],
        edit_key: str | None,
    ) -> BlockEdit | None:
        """One attempt in one transaction; None means the version check lost a race."""
        if edit_key is not None:
            recorded = await _recorded_edit(conn, agent_key, edit_key)
            if recorded is not None:
                return recorded
        row = (await conn.execute(query.with_for_update(of=blocks))).first()
        if row is None:
            raise NotFoundError(missing)
        block = _block(row)
        edit = apply_change(block, agent_key, block.label, change, edit_key, self._clock())
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

    # --- by id (a Block's label is the block's own) ------------------------------------

    async def by_id(self, block_id: str) -> Block | None:
        async with self._db.read() as conn:
            return await _read_one(conn, block_id)

    async def shared(self, label: str | None = None) -> list[Block]:
        query = select(blocks, blocks.c.label.label("agent_label")).where(
            blocks.c.shared_name.is_not(None)
        )
        if label is not None:
            query = query.where(blocks.c.label == label)
        async with self._db.read() as conn:
            return [_block(row) for row in await conn.execute(query.order_by(blocks.c.id))]

    async def create_shared(self, spec: BlockSpec) -> Block:
        async def work(conn: Conn) -> Block:
            block_id = await self._insert_block(conn, spec, None, by_id=True)
            return _present(await _read_one(conn, block_id), block_id)

        return await self._db.write(work)

    async def update(
        self,
        block_id: str,
        *,
        limit: int | None = None,
        description: str | None = None,
        read_only: bool | None = None,
    ) -> Block:
        given = {"char_limit": limit, "description": description, "read_only": read_only}
        values = {column: value for column, value in given.items() if value is not None}

        async def work(conn: Conn) -> Block:
            stmt = update(blocks).where(blocks.c.id == block_id)
            if (await conn.execute(stmt.values(**values, updated_at=self._clock()))).rowcount:
                return _present(await _read_one(conn, block_id), block_id)
            raise NotFoundError(f"no block {block_id!r}")

        return await self._db.write(work)

    async def edit_by_id(
        self, block_id: str, change: Callable[[Block], str], *, editor: AgentKey
    ) -> BlockEdit:
        return await self._edit(
            _one_block(block_id), f"no block {block_id!r}", editor, change, None
        )

    async def delete(self, block_id: str) -> bool:
        async def work(conn: Conn) -> bool:
            # Locked first, so that an edit running now finishes before (or finds it gone).
            found = select(blocks.c.id).where(blocks.c.id == block_id).with_for_update()
            if (await conn.execute(found)).first() is None:
                return False
            await _delete_blocks(conn, [block_id])
            return True

        return await self._db.write(work)

    async def agents_of(self, block_id: str) -> list[AgentKey]:
        query = (
            select(agent_blocks.c.agent_key)
            .where(agent_blocks.c.block_id == block_id)
            .distinct()
            .order_by(agent_blocks.c.agent_key)
        )
        async with self._db.read() as conn:
            return [str(key) for key in (await conn.execute(query)).scalars()]

    async def attach_by_id(self, agent_key: AgentKey, block_id: str) -> Block:
        for _ in range(2):
            try:
                label = await self._db.write(lambda conn: self._link(conn, agent_key, block_id))
                break
            except IntegrityError:
                continue  # a concurrent attach took the label: the next try sees whose it is
        else:
            raise StoreError(f"block {block_id!r} could not be attached to {agent_key!r}")
        found = await self.get(agent_key, label)
        if found is None:
            raise NotFoundError(f"block {block_id!r} was deleted while being attached")
        return found

    async def _link(self, conn: Conn, agent_key: AgentKey, block_id: str) -> str:
        """Link the block unless the agent has it or the label; returns the agent's label."""
        row = (await conn.execute(_one_block(block_id).with_for_update())).first()
        if row is None:
            raise NotFoundError(f"no block {block_id!r}")
        mine = and_(agent_blocks.c.agent_key == agent_key, agent_blocks.c.block_id == block_id)
        linked = (await conn.execute(select(agent_blocks.c.label).where(mine))).scalar()
        if linked is not None:
            return str(linked)
        label_taken = and_(agent_blocks.c.agent_key == agent_key, agent_blocks.c.label == row.label)
        if (await conn.execute(select(agent_blocks.c.block_id).where(label_taken))).first():
            return str(row.label)
        await _share(conn, block_id)
        await self._insert_link(conn, agent_key, row.label, block_id)
        return str(row.label)

    async def detach_by_id(self, agent_key: AgentKey, block_id: str) -> bool:
        async def work(conn: Conn) -> bool:
            link = and_(agent_blocks.c.agent_key == agent_key, agent_blocks.c.block_id == block_id)
            if (await conn.execute(delete(agent_blocks).where(link))).rowcount == 0:
                return False
            await _share(conn, block_id)
            return True

        return await self._db.write(work)


async def _read_one(conn: Conn, block_id: str) -> Block | None:
    row = (await conn.execute(_one_block(block_id))).first()
    return _block(row) if row else None


def _present(block: Block | None, block_id: str) -> Block:
    if block is None:  # only when the database lost a row inside one transaction
        raise StoreError(f"block {block_id!r} vanished")
    return block


async def _share(conn: Conn, block_id: str) -> None:
    """Make a private block shared, named by its id: it is no longer one agent's."""
    private = and_(blocks.c.id == block_id, blocks.c.shared_name.is_(None))
    await conn.execute(update(blocks).where(private).values(shared_name=block_id))


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
