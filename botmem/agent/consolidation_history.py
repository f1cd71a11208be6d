"""What consolidation passes changed, read back from the blocks' edit history, and undo.

A pass makes its block edits with edit keys "consolidation:<run_id>:<step>:<index>", so the
recorded edits (with their old and new values) are its record: nothing else is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from botmem.errors import NotFoundError
from botmem.stores.base import BlockStore
from botmem.types import AgentKey, Block, BlockEdit

EDIT_PREFIX = "consolidation:"
UNDO_PREFIX = "undo:"
SCAN_EDITS = 2000
"""How many of an agent's most recent block edits are searched for passes."""


@dataclass(frozen=True)
class ConsolidationRun:
    run_id: str
    at: datetime
    """When the pass made its first edit."""
    changes: dict[str, tuple[str, str]]
    """Label -> (value before the pass, value after it)."""
    undone: bool = False


def run_id_of(edit: BlockEdit) -> str | None:
    key = edit.edit_key or ""
    return key.split(":")[1] if key.startswith(EDIT_PREFIX) else None


async def run_edits(blocks: BlockStore, agent_key: AgentKey, run_id: str) -> list[BlockEdit]:
    """The edits one pass applied, oldest first."""
    edits = await _own_edits(blocks, agent_key)
    return [e for e in edits if run_id_of(e) == run_id]


async def list_runs(blocks: BlockStore, agent_key: AgentKey, limit: int) -> list[ConsolidationRun]:
    """The agent's passes that changed something, newest first."""
    return group_runs(await _own_edits(blocks, agent_key))[:limit]


async def undo_run(blocks: BlockStore, agent_key: AgentKey, run_id: str) -> list[str]:
    """Put back every block the pass changed as it was before; the labels restored.

    An undone pass is not undone again (a later edit of the block is kept); each restore has
    its own edit key as well, so a replayed undo changes nothing either.
    """
    run = next(
        (r for r in await list_runs(blocks, agent_key, SCAN_EDITS) if r.run_id == run_id), None
    )
    if run is None or run.undone:
        return []
    restored = []
    for label, (before, after) in run.changes.items():
        if before == after:
            continue
        try:
            await blocks.edit(
                agent_key,
                label,
                _restore(before),
                edit_key=f"{UNDO_PREFIX}{run_id}:{label}",
            )
        except NotFoundError:
            continue  # the block is gone: nothing to restore
        restored.append(label)
    return restored


def group_runs(edits: list[BlockEdit]) -> list[ConsolidationRun]:
    """Passes from edits listed oldest first; newest pass first."""
    firsts: dict[str, datetime] = {}
    changes: dict[str, dict[str, tuple[str, str]]] = {}
    undone: set[str] = set()
    for edit in edits:
        key = edit.edit_key or ""
        if key.startswith(UNDO_PREFIX):
            undone.add(key.split(":")[1])
        run_id = run_id_of(edit)
        if run_id is None:
            continue
        firsts.setdefault(run_id, edit.created_at)
        labels = changes.setdefault(run_id, {})
        before = labels[edit.label][0] if edit.label in labels else edit.old_value
        labels[edit.label] = (before, edit.new_value)
    runs = [ConsolidationRun(r, firsts[r], changes[r], r in undone) for r in firsts]
    return runs[::-1]


def _restore(value: str) -> Callable[[Block], str]:
    return lambda _block: value


async def _own_edits(blocks: BlockStore, agent_key: AgentKey) -> list[BlockEdit]:
    """The agent's own recent edits, oldest first (others' edits of shared blocks left out)."""
    edits = await blocks.edits(agent_key, limit=SCAN_EDITS)
    return [e for e in reversed(edits) if e.agent_key == agent_key]
