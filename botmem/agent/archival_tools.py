"""Archival memory tools: passages the agent keeps for later, searched by meaning and words."""

from __future__ import annotations

from datetime import datetime, time

from botmem.agent.memory_tools import day_after, parse_day
from botmem.agent.tools import ToolContext, tool
from botmem.errors import ToolError
from botmem.stores.base import Passage

MAX_PASSAGE_CHARS = 10_000
SNIPPET_CHARS = 500
MAX_TAGS = 10


@tool
async def archival_memory_insert(
    ctx: ToolContext, content: str, tags: list[str] | None = None
) -> str:
    """Save a passage to archival memory: long-term storage for facts, notes and details
    that do not fit in core memory. Write it so it makes sense on its own later.

    Args:
        content: The text to keep.
        tags: Optional labels to filter by later, e.g. ["travel", "family"].
    """
    text = content.strip()
    if not text:
        raise ToolError("content is empty; write the text you want to keep")
    if len(text) > MAX_PASSAGE_CHARS:
        raise ToolError(
            f"content is {len(text)} characters; keep passages under "
            f"{MAX_PASSAGE_CHARS} (split it into several)"
        )
    clean_tags = _tags(tags)
    stored = await ctx.retriever.insert_passage(Passage(ctx.agent_key, text, ctx.now, clean_tags))
    return f"Saved to archival memory as passage {stored.id}."


@tool
async def archival_memory_search(
    ctx: ToolContext,
    query: str,
    page: int = 0,
    tags: list[str] | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
) -> str:
    """Search archival memory by meaning and words.

    Args:
        query: What you are looking for.
        page: Result page, starting at 0.
        tags: Only passages having all of these tags.
        start_date: Only passages saved on or after this day (YYYY-MM-DD).
        end_date: Only passages saved on or before this day (YYYY-MM-DD).
    """
    if page < 0:
        raise ToolError("page must be 0 or more")
    start = end = None
    if start_date:
        start = datetime.combine(parse_day(start_date, "start_date"), time.min, ctx.timezone)
    if end_date:
        last = parse_day(end_date, "end_date")
        end = datetime.combine(day_after(last), time.min, ctx.timezone)
    if start and end and end <= start:
        raise ToolError(f"end_date {end_date} is before start_date {start_date}")
    size = ctx.search_page_size
    found = await ctx.retriever.search_passages(
        ctx.agent_key,
        query,
        limit=size + 1,
        offset=page * size,
        tags=_tags(tags),
        start=start,
        end=end,
    )
    if not found:
        return "No passages found" + (" on this page." if page else ".")
    lines = [f"Archival passages for {query!r} (page {page}):"]
    for passage in found[:size]:
        stamp = passage.created_at.astimezone(ctx.timezone).isoformat(timespec="minutes")
        label = f" [{', '.join(passage.tags)}]" if passage.tags else ""
        text = (
            passage.text
            if len(passage.text) <= SNIPPET_CHARS
            else (passage.text[:SNIPPET_CHARS] + "…")
        )
        lines.append(f"[{stamp}]{label} {text}")
    if len(found) > size:
        lines.append(f"More results: page={page + 1}.")
    return "\n".join(lines)


def _tags(tags: list[str] | None) -> tuple[str, ...]:
    if not tags:
        return ()
    clean = tuple(dict.fromkeys(t.strip().lower() for t in tags if t.strip()))
    if len(clean) > MAX_TAGS:
        raise ToolError(f"at most {MAX_TAGS} tags")
    return clean


ARCHIVAL_TOOLS = (archival_memory_insert, archival_memory_search)
