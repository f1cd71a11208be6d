"""archival_memory_insert / archival_memory_search as the model calls them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from botmem.agent.archival_tools import archival_memory_insert, archival_memory_search
from botmem.agent.retrieval import Retriever
from botmem.agent.tools import ToolContext
from botmem.config import RetrievalSettings
from botmem.errors import ToolError
from botmem.stores.base import Stores
from botmem.stores.memory import memory_stores
from botmem.testing.embeddings import HashEmbedder


def _ctx(stores: Stores, agent: str = "a:1", day: int = 1, tz: str = "UTC") -> ToolContext:
    retriever = Retriever(stores, HashEmbedder(), RetrievalSettings())
    now = datetime(2026, 4, day, 12, tzinfo=UTC)
    return ToolContext(agent, stores, retriever, now, ZoneInfo(tz), "k", search_page_size=2)


async def _insert(ctx: ToolContext, content: str, tags: list[str] | None = None) -> str:
    args: dict[str, object] = {"content": content}
    if tags is not None:
        args["tags"] = tags
    return await archival_memory_insert.call(ctx, json.dumps(args))


async def _search(ctx: ToolContext, **args: object) -> str:
    return await archival_memory_search.call(ctx, json.dumps(args))


async def test_insert_then_search_finds_the_passage_with_its_tags() -> None:
    stores = memory_stores()
    ctx = _ctx(stores)
    assert "passage" in await _insert(
        ctx, "Ben's daughter Mia starts school in September", ["Family", "school"]
    )
    await _insert(ctx, "Ben prefers aisle seats on long flights", ["travel"])
    found = await _search(ctx, query="when does Mia start school")
    assert found.splitlines()[1].endswith(
        "[family, school] Ben's daughter Mia starts school in September"
    )
    ((passage, _score),) = await stores.archival.search("a:1", "aisle", limit=5)
    assert passage.tags == ("travel",) and passage.created_at == ctx.now


async def test_tags_and_dates_filter_and_pages_continue() -> None:
    stores = memory_stores()
    for day in (1, 2, 3):
        await _insert(_ctx(stores, day=day), f"trip note number {day} about Lisbon", ["travel"])
    await _insert(_ctx(stores, day=2), "work note about Lisbon office", ["work"])
    ctx = _ctx(stores, day=4)
    travel = await _search(ctx, query="Lisbon", tags=["travel"])
    assert "work note" not in travel and "More results: page=1." in travel
    rest = await _search(ctx, query="Lisbon", tags=["travel"], page=1)
    assert rest.count("trip note") == 1 and "More results" not in rest
    day2 = await _search(ctx, query="Lisbon", start_date="2026-04-02", end_date="2026-04-02")
    assert "number 2" in day2 and "work note" in day2 and "number 1" not in day2
    assert "number 3" not in day2


async def test_passages_never_reach_another_agent() -> None:
    stores = memory_stores()
    await _insert(_ctx(stores, "a:1"), "the secret code is 4711")
    assert await _search(_ctx(stores, "a:2"), query="secret code") == "No passages found."


async def test_bad_arguments_get_clear_errors() -> None:
    ctx = _ctx(memory_stores())
    with pytest.raises(ToolError, match="content is empty"):
        await _insert(ctx, "   ")
    with pytest.raises(ToolError, match="under 10000"):
        await _insert(ctx, "x" * 10_001)
    with pytest.raises(ToolError, match="not a date"):
        await _search(ctx, query="x", start_date="yesterday")
    with pytest.raises(ToolError, match="before start_date"):
        await _search(ctx, query="x", start_date="2026-04-05", end_date="2026-04-01")
    with pytest.raises(ToolError, match="page must be"):
        await _search(ctx, query="x", page=-1)
    with pytest.raises(ToolError, match="must be a array"):
        await archival_memory_insert.call(ctx, '{"content": "x", "tags": "travel"}')
