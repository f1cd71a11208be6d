"""MemoryBlockStore: core memory blocks in memory, private or shared. Same contract as SQL.

Safe under asyncio without locks for the reason given in memory.py: no method awaits
between reading and writing its state, so an edit always applies to the current value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from botmem.errors import NotFoundError
from botmem.stores.base import Clock, apply_change
from botmem.stores.block_ids import new_block_id
from botmem.types import AgentKey, Block, BlockEdit, BlockSpec


class MemoryBlockStore:
    def __init__(self, clock: Clock):
        self._clock = clock
        self._blocks: dict[str, Block] = {}  # in creation order
        self._shared: dict[str, str] = {}  # shared_name -> block id
        self._links: dict[AgentKey, dict[str, str]] = {}  # label -> block id, attach order
        self._edits: list[BlockEdit] = []  # oldest first

    async def for_agent(self, agent_key: AgentKey) -> list[Block]:
        links = self._links.get(agent_key, {})
        return [replace(self._blocks[bid], label=label) for label, bid in links.items()]

    async def get(self, agent_key: AgentKey, label: str) -> Block | None:
        return self._view(agent_key, label)

    def _view(self, agent_key: AgentKey, label: str) -> Block | None:
        block_id = self._links.get(agent_key, {}).get(label)
        return replace(self._blocks[block_id], label=label) if block_id else None

    async def attach(
        self, agent_key: AgentKey, spec: BlockSpec, *, shared_name: str | None = None
    ) -> Block:
        links = self._links.setdefault(agent_key, {})
        if spec.label not in links:
            block_id = self._shared.get(shared_name) if shared_name else None
            if block_id is None:
                block_id = self._create(spec, shared_name).id
            links[spec.label] = block_id
        return replace(self._blocks[links[spec.label]], label=spec.label)

    def _create(self, spec: BlockSpec, shared_name: str | None, *, by_id: bool = False) -> Block:
        now = self._clock()
        block_id = new_block_id(now)
        block = Block(
            id=block_id,
            label=spec.label,
            value=spec.value,
            limit=spec.limit,
            description=spec.description,
            read_only=spec.read_only,
            version=1,
            shared_name=block_id if by_id else shared_name,
            updated_at=now,
        )
        self._blocks[block.id] = block
        if block.shared_name:
            self._shared[block.shared_name] = block.id
        return block

    async def detach(self, agent_key: AgentKey, label: str) -> None:
        block_id = self._links.get(agent_key, {}).pop(label, None)
        if block_id and self._blocks[block_id].shared_name is None:
            self._drop_block(block_id)

    def _drop_block(self, block_id: str) -> None:
        block = self._blocks.pop(block_id)
        if block.shared_name:
            self._shared.pop(block.shared_name, None)
        self._edits = [e for e in self._edits if e.block_id != block_id]

    async def edit(
        self,
        agent_key: AgentKey,
        label: str,
        change: Callable[[Block], str],
        *,
        edit_key: str | None = None,
    ) -> BlockEdit:
        if edit_key is not None:
            for recorded in self._edits:
                if recorded.agent_key == agent_key and recorded.edit_key == edit_key:
                    return recorded
        block = self._view(agent_key, label)
        if block is None:
            raise NotFoundError(f"{agent_key!r} has no block {label!r}")
        return self._apply(block, agent_key, change, edit_key)

    def _apply(
        self,
        block: Block,
        agent_key: AgentKey,
        change: Callable[[Block], str],
        edit_key: str | None,
    ) -> BlockEdit:
        edit = apply_change(block, agent_key, block.label, change, edit_key, self._clock())
        if edit.new_value != edit.old_value:
            stored = self._blocks[block.id]
            self._blocks[block.id] = replace(
                stored, value=edit.new_value, version=edit.version, updated_at=edit.created_at
            )
            self._edits.append(edit)
        return edit

    async def edits(
        self, agent_key: AgentKey, label: str | None = None, *, limit: int = 50
    ) -> list[BlockEdit]:
        links = self._links.get(agent_key, {})
        wanted = {bid for lbl, bid in links.items() if label is None or lbl == label}
        return [e for e in reversed(self._edits) if e.block_id in wanted][:limit]

    async def delete_agent(self, agent_key: AgentKey) -> None:
        self._edits = [e for e in self._edits if e.agent_key != agent_key]
        for block_id in self._links.pop(agent_key, {}).values():
            if self._blocks[block_id].shared_name is None:
                self._drop_block(block_id)

    # --- by id ------------------------------------------------------------------------

    async def by_id(self, block_id: str) -> Block | None:
        return self._blocks.get(block_id)

    async def shared(self, label: str | None = None) -> list[Block]:
        found = [b for b in self._blocks.values() if b.shared_name is not None]
        return sorted((b for b in found if label is None or b.label == label), key=_id)

    async def create_shared(self, spec: BlockSpec) -> Block:
        return self._create(spec, None, by_id=True)

    async def update(
        self,
        block_id: str,
        *,
        limit: int | None = None,
        description: str | None = None,
        read_only: bool | None = None,
    ) -> Block:
        block = self._existing(block_id)
        self._blocks[block_id] = replace(
            block,
            limit=block.limit if limit is None else limit,
            description=block.description if description is None else description,
            read_only=block.read_only if read_only is None else read_only,
            updated_at=self._clock(),
        )
        return self._blocks[block_id]

    def _existing(self, block_id: str) -> Block:
        block = self._blocks.get(block_id)
        if block is None:
            raise NotFoundError(f"no block {block_id!r}")
        return block

    async def edit_by_id(
        self, block_id: str, change: Callable[[Block], str], *, editor: AgentKey
    ) -> BlockEdit:
        return self._apply(self._existing(block_id), editor, change, None)

    async def delete(self, block_id: str) -> bool:
        if block_id not in self._blocks:
            return False
        for links in self._links.values():
            for label in [lbl for lbl, bid in links.items() if bid == block_id]:
                del links[label]
        self._drop_block(block_id)
        return True

    async def agents_of(self, block_id: str) -> list[AgentKey]:
        return sorted(key for key, links in self._links.items() if block_id in links.values())

    async def attach_by_id(self, agent_key: AgentKey, block_id: str) -> Block:
        block = self._existing(block_id)
        links = self._links.setdefault(agent_key, {})
        for label, linked in links.items():
            if linked == block_id:
                return replace(block, label=label)  # attached already
        if block.label not in links:
            self._share(block_id)
            links[block.label] = block_id
        return replace(self._blocks[links[block.label]], label=block.label)

    def _share(self, block_id: str) -> None:
        """Make a private block shared, named by its id (it is about to be one agent's no more)."""
        block = self._blocks[block_id]
        if block.shared_name is None:
            self._blocks[block_id] = replace(block, shared_name=block_id)
            self._shared[block_id] = block_id

    async def detach_by_id(self, agent_key: AgentKey, block_id: str) -> bool:
        links = self._links.get(agent_key, {})
        labels = [label for label, linked in links.items() if linked == block_id]
        for label in labels:
            del links[label]
        if labels:
            self._share(block_id)
        return bool(labels)


def _id(block: Block) -> str:
    return block.id
