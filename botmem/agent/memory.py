"""Core memory blocks: how they are rendered into the prompt and how edits change them.

The edit functions are pure `Block -> new value` changes, so the store can re-apply them to the
current value when another agent edited a shared block in the meantime.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from botmem.errors import ToolError
from botmem.types import Block

Change = Callable[[Block], str]
HARD_CAP_FACTOR = 2
"""A block may grow to this many times its limit before edits are refused."""


@dataclass(frozen=True)
class MemoryStats:
    recall_messages: int
    archival_passages: int | None
    """None while no archival store is configured."""
    last_summary_at: datetime | None
    now: datetime


def render_blocks(blocks: Sequence[Block]) -> str:
    """Blocks as the model sees them, each with its metadata."""
    return "\n".join(_render_block(b) for b in blocks)


def _render_block(block: Block) -> str:
    flags = [f"chars {len(block.value)}/{block.limit}"]
    if block.read_only:
        flags.append("read-only")
    if block.shared_name:
        flags.append("shared with other agents")
    lines = [f"<{block.label} {' '.join(_attr(f) for f in flags)}>"]
    if block.description:
        lines.append(f"<description>{block.description}</description>")
    lines.append(block.value)
    lines.append(f"</{block.label}>")
    return "\n".join(lines)


def _attr(flag: str) -> str:
    key, _, value = flag.partition(" ")
    return f'{key.replace(" ", "_")}="{value}"' if value else key


def render_stats(stats: MemoryStats) -> str:
    archival = "not enabled" if stats.archival_passages is None else str(stats.archival_passages)
    summary = (
        stats.last_summary_at.isoformat(timespec="minutes") if stats.last_summary_at else "never"
    )
    return (
        f"Current time: {_local_time(stats.now)}\n"
        f"Messages in recall memory (see conversation_search): {stats.recall_messages}\n"
        f"Passages in archival memory: {archival}\n"
        f"Last summary of older messages: {summary}"
    )


def _local_time(now: datetime) -> str:
    """ "2026-03-14T13:00+01:00 (Europe/Paris)": the person's time, which check-ins use."""
    zone = getattr(now.tzinfo, "key", None)
    stamp = now.isoformat(timespec="minutes")
    return f"{stamp} ({zone})" if zone else stamp


def writable(block: Block) -> None:
    if block.read_only:
        raise ToolError(f"block '{block.label}' is read-only and cannot be edited")


def hard_cap(block: Block) -> int:
    """The most a block may hold. Its `limit` is soft: over it, an edit is still accepted (the
    model is warned and a consolidation condenses the block) so a user's turn never fails."""
    return HARD_CAP_FACTOR * block.limit


def within_limit(block: Block, new_value: str) -> str:
    if len(new_value) > hard_cap(block):
        raise ToolError(
            f"this edit would make block '{block.label}' {len(new_value):,} characters long, "
            f"over twice its limit of {block.limit:,}. Make room first: condense it with "
            "memory_rethink or remove details with core_memory_replace."
        )
    return new_value


def append(content: str) -> Change:
    def change(block: Block) -> str:
        writable(block)
        joined = f"{block.value}\n{content}" if block.value else content
        return within_limit(block, joined)

    return change


def replace(old_content: str, new_content: str) -> Change:
    def change(block: Block) -> str:
        writable(block)
        if not old_content:
            raise ToolError("old_content is empty; give the exact text to replace")
        if old_content not in block.value:
            raise ToolError(
                f"the text {old_content!r} was not found in block '{block.label}'; "
                "copy it exactly from the block as shown in your memory"
            )
        return within_limit(block, block.value.replace(old_content, new_content))

    return change


def rethink(new_memory: str) -> Change:
    def change(block: Block) -> str:
        writable(block)
        return within_limit(block, new_memory)

    return change
