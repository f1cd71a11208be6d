"""The built-in tools, with the names of the seed documents and Letta (a public API)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from botmem.agent import memory
from botmem.agent.tools import Tool, ToolContext, tool
from botmem.errors import NotFoundError, ToolError
from botmem.types import Block, Message

SNIPPET_CHARS = 300
NEAR_LIMIT = 0.9
"""Share of its limit from which a growing block reports memory pressure."""


@tool(ends_turn=True)
async def send_message(ctx: ToolContext, message: str) -> str:
    """Send a message to the person you are talking with. This ends your turn.

    Args:
        message: The full text of your reply.
    """
    if not message.strip():
        raise ToolError("message is empty; write the reply you want to send")
    return "Message sent."


@tool
async def core_memory_append(ctx: ToolContext, label: str, content: str) -> str:
    """Add a new line to one of your core memory blocks (always visible to you).

    Args:
        label: The block to edit, e.g. "human" or "persona".
        content: The text to add, as a new line at the end of the block.
    """
    return await _edit(ctx, label, memory.append(content))


@tool
async def core_memory_replace(
    ctx: ToolContext, label: str, old_content: str, new_content: str
) -> str:
    """Replace text in a core memory block. Use an empty new_content to delete the text.

    Args:
        label: The block to edit.
        old_content: The exact text to find in the block.
        new_content: The text to put in its place.
    """
    return await _edit(ctx, label, memory.replace(old_content, new_content))


@tool
async def memory_rethink(ctx: ToolContext, label: str, new_memory: str) -> str:
    """Rewrite a whole core memory block, e.g. to reorganise or condense it.

    Args:
        label: The block to rewrite.
        new_memory: The complete new content of the block.
    """
    return await _edit(ctx, label, memory.rethink(new_memory))


@tool
async def conversation_search(ctx: ToolContext, query: str, page: int = 0) -> str:
    """Search your whole past conversation (including messages no longer in view) by meaning
    and words.

    Args:
        query: What to look for, e.g. a topic, a name or a question.
        page: Result page, starting at 0.
    """
    size = ctx.search_page_size
    found = await ctx.retriever.search_messages(
        ctx.agent_key,
        query,
        limit=size + 1,
        offset=_offset(page, size),
        before_id=ctx.turn_start_id,
    )
    return _format_results(ctx, found, page, size, f"matching {query!r}")


@tool
async def conversation_search_date(
    ctx: ToolContext, start_date: str, end_date: str, page: int = 0
) -> str:
    """Find past messages by date (inclusive, in the user's timezone).

    Args:
        start_date: First day, ISO format YYYY-MM-DD.
        end_date: Last day, ISO format YYYY-MM-DD.
        page: Result page, starting at 0.
    """
    first, last = parse_day(start_date, "start_date"), parse_day(end_date, "end_date")
    if last < first:
        raise ToolError(f"end_date {end_date} is before start_date {start_date}")
    start = datetime.combine(first, time.min, ctx.timezone)
    end = datetime.combine(day_after(last), time.min, ctx.timezone)
    size = ctx.search_page_size
    found = await ctx.stores.history.between(
        ctx.agent_key, start, end, limit=size + 1, offset=_offset(page, size)
    )
    return _format_results(ctx, found, page, size, f"from {first} to {last}")


BUILTIN_TOOLS: tuple[Tool, ...] = (
    send_message,
    core_memory_append,
    core_memory_replace,
    memory_rethink,
    conversation_search,
    conversation_search_date,
)


async def _edit(
    ctx: ToolContext, label: str, change: memory.Change, near_limit: float = NEAR_LIMIT
) -> str:
    limits: list[int] = []  # the block's limit, as the edit saw it (spares a read)

    def noting_limit(block: Block) -> str:
        limits.append(block.limit)
        return change(block)

    try:
        edit = await ctx.stores.blocks.edit(
            ctx.agent_key, label, noting_limit, edit_key=ctx.call_key
        )
    except NotFoundError:
        labels = [b.label for b in await ctx.stores.blocks.for_agent(ctx.agent_key)]
        raise ToolError(
            f"no block labelled {label!r}; your blocks are {', '.join(labels)}"
        ) from None
    if edit.old_value == edit.new_value:
        return f"Block '{label}' unchanged (the edit made no difference)."
    size = len(edit.new_value)
    if not limits:  # a replayed edit: the store did not call the change again
        block = await ctx.stores.blocks.get(ctx.agent_key, label)
        limits.append(block.limit if block else 0)
    limit = limits[-1]
    if size > len(edit.old_value) and limit:  # only growth asks for a consolidation
        _report_pressure(ctx, label, size, limit, near_limit)
    if limit and size > limit:
        return (
            f"Block '{label}' updated: now {size:,} characters, over its limit of {limit:,}: "
            "it will be condensed soon; keep new entries short."
        )
    return f"Block '{label}' updated: now {size} characters."


def _report_pressure(
    ctx: ToolContext, label: str, size: int, limit: int, near_limit: float
) -> None:
    """Tell the scheduler (if any) that a block is filling up: it plans a consolidation."""
    if ctx.memory_pressure is None:
        return
    if size > limit:
        ctx.memory_pressure(f"block '{label}' over its limit")
    elif size >= near_limit * limit:
        ctx.memory_pressure(f"block '{label}' {100 * size // limit}% full")


def day_after(day: date) -> date:
    """The next day; the last day there is stays itself (searches end there anyway)."""
    return day if day == date.max else day + timedelta(days=1)


def parse_day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ToolError(f"{name} {text!r} is not a date; use YYYY-MM-DD, e.g. 2026-03-14") from None


def _offset(page: int, size: int) -> int:
    if page < 0:
        raise ToolError("page must be 0 or more")
    return page * size


def _format_results(ctx: ToolContext, found: list[Message], page: int, size: int, what: str) -> str:
    if not found:
        return f"No messages {what}" + (" on this page." if page else ".")
    lines = [f"Messages {what} (page {page}):"]
    for msg in found[:size]:
        stamp = msg.created_at.astimezone(ctx.timezone).isoformat(timespec="minutes")
        text = msg.spoken.replace("\n", " ")
        if len(text) > SNIPPET_CHARS:
            text = text[:SNIPPET_CHARS] + "…"
        lines.append(f"[{stamp}] {msg.role}: {text}")
    if len(found) > size:
        lines.append(f"More results: page={page + 1}.")
    return "\n".join(lines)
