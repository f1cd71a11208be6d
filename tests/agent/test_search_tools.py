"""conversation_search and conversation_search_date as the model calls them."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from botmem.agent.memory_tools import conversation_search, conversation_search_date
from botmem.agent.retrieval import Retriever
from botmem.agent.tools import ToolContext
from botmem.config import RetrievalSettings
from botmem.errors import ToolError
from botmem.stores.base import Stores
from botmem.stores.memory import memory_stores
from botmem.testing.embeddings import HashEmbedder
from botmem.types import Message, ToolCall


async def _ctx(tz: str = "UTC") -> ToolContext:
    stores = memory_stores()
    await stores.agents.ensure("t:1")
    await stores.agents.ensure("t:2")
    days = [datetime(2026, 3, d, 23, 30, tzinfo=UTC) for d in (1, 2, 3)]
    await stores.history.append(
        [
            Message("t:1", "user", "I adopted a cat named Miso", days[0]),
            Message("t:1", "assistant", "Miso is a lovely name", days[1]),
            Message("t:1", "user", "my sister visits in May", days[2]),
            Message("t:2", "user", "secret of another user: cat", days[0]),
        ]
    )
    return ToolContext(
        "t:1", stores, _retriever(stores), days[2], ZoneInfo(tz), "k", search_page_size=1
    )


def _retriever(stores: Stores) -> Retriever:
    return Retriever(stores, HashEmbedder(), RetrievalSettings())


async def test_search_finds_only_the_agents_own_messages_paged() -> None:
    ctx = await _ctx()
    first = await conversation_search.call(ctx, '{"query": "cat Miso"}')
    assert "I adopted a cat named Miso" in first and "More results: page=1" in first
    second = await conversation_search.call(ctx, '{"query": "cat Miso", "page": 1}')
    assert "Miso is a lovely name" in second
    assert "another user" not in first + second
    assert "No messages" in await conversation_search.call(ctx, '{"query": "giraffe"}')


async def test_date_search_is_inclusive_in_the_users_timezone() -> None:
    ctx = await _ctx("Europe/Paris")  # 23:30 UTC is already the next day in Paris
    found = await conversation_search_date.call(
        ctx, '{"start_date": "2026-03-03", "end_date": "2026-03-03"}'
    )
    assert "Miso is a lovely name" in found and "2026-03-03T00:30+01:00" in found
    assert "adopted" not in found


async def test_bad_dates_get_clear_errors() -> None:
    ctx = await _ctx()
    with pytest.raises(ToolError, match="not a date; use YYYY-MM-DD"):
        await conversation_search_date.call(ctx, '{"start_date": "March 1", "end_date": "x"}')
    with pytest.raises(ToolError, match="before start_date"):
        await conversation_search_date.call(
            ctx, '{"start_date": "2026-03-05", "end_date": "2026-03-01"}'
        )
    with pytest.raises(ToolError, match="page must be"):
        await conversation_search.call(ctx, '{"query": "x", "page": -1}')


async def test_replies_sent_with_send_message_show_their_text() -> None:
    ctx = await _ctx()
    when = datetime(2026, 3, 4, 9, tzinfo=UTC)
    await ctx.stores.history.append(
        [
            Message(
                "t:1",
                "assistant",
                None,
                when,
                tool_calls=(ToolCall("c", "send_message", '{"message": "See you Friday"}'),),
            ),
        ]
    )
    found = await conversation_search_date.call(
        ctx, '{"start_date": "2026-03-04", "end_date": "2026-03-04"}'
    )
    assert "assistant: See you Friday" in found


async def test_search_finds_what_the_agent_said_with_send_message(tmp_path: object) -> None:
    from botmem.stores.sql import open_sql_stores

    for stores in (memory_stores(), await open_sql_stores(f"sqlite:///{tmp_path}/s.db")):
        await stores.agents.ensure("t:1")
        await stores.history.append(
            [
                Message(
                    "t:1",
                    "assistant",
                    "thinking",
                    datetime(2026, 3, 4, tzinfo=UTC),
                    tool_calls=(ToolCall("c", "send_message", '{"message": "Try the ramen"}'),),
                ),
            ]
        )
        ctx = ToolContext(
            "t:1",
            stores,
            _retriever(stores),
            datetime(2026, 3, 5, tzinfo=UTC),
            ZoneInfo("UTC"),
            "k",
        )
        assert "assistant: Try the ramen" in await conversation_search.call(
            ctx, '{"query": "ramen"}'
        )
        await stores.aclose()
