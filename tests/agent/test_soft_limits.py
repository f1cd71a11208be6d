"""Block limits are soft: over the limit an edit is accepted with a warning and memory pressure;
only beyond twice the limit is it refused."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from botmem.agent.memory import within_limit
from botmem.agent.memory_tools import core_memory_append, memory_rethink
from botmem.agent.retrieval import Retriever
from botmem.agent.tools import Tool, ToolContext
from botmem.config import RetrievalSettings
from botmem.errors import ToolError
from botmem.stores.base import Stores
from botmem.stores.memory import memory_stores
from botmem.testing import call, reply
from botmem.testing.embeddings import HashEmbedder
from botmem.types import Block, BlockSpec
from tests.agent.conftest import Bot

AGENT = "fake:ann"
_keys = itertools.count()


@pytest.fixture
async def stores() -> Stores:
    stores = memory_stores()
    await stores.agents.ensure(AGENT)
    await stores.blocks.attach(AGENT, BlockSpec("human", "", limit=100))
    return stores


async def use(stores: Stores, tool: Tool, pressure: list[str] | None, **args: str) -> str:
    ctx = ToolContext(
        AGENT,
        stores,
        Retriever(stores, HashEmbedder(), RetrievalSettings()),
        datetime(2026, 1, 1, tzinfo=UTC),
        ZoneInfo("UTC"),
        f"test:{next(_keys)}",
        memory_pressure=None if pressure is None else pressure.append,
    )
    return await tool.fn(ctx, **args)


async def value(stores: Stores) -> str:
    block = await stores.blocks.get(AGENT, "human")
    assert block is not None
    return block.value


async def test_an_over_limit_edit_is_accepted_with_a_warning(stores: Stores) -> None:
    pressure: list[str] = []
    result = await use(stores, core_memory_append, pressure, label="human", content="x" * 150)
    assert result == (
        "Block 'human' updated: now 150 characters, over its limit of 100: "
        "it will be condensed soon; keep new entries short."
    )
    assert await value(stores) == "x" * 150
    assert pressure == ["block 'human' over its limit"]


async def test_beyond_twice_the_limit_an_edit_is_refused(stores: Stores) -> None:
    pressure: list[str] = []
    with pytest.raises(ToolError, match=r"over twice its limit of 100\. Make room first"):
        await use(stores, core_memory_append, pressure, label="human", content="x" * 201)
    assert await value(stores) == "" and pressure == []
    await use(stores, core_memory_append, pressure, label="human", content="x" * 200)
    assert len(await value(stores)) == 200


async def test_a_nearly_full_block_reports_pressure(stores: Stores) -> None:
    pressure: list[str] = []
    result = await use(stores, memory_rethink, pressure, label="human", new_memory="x" * 89)
    assert result == "Block 'human' updated: now 89 characters." and pressure == []
    await use(stores, core_memory_append, pressure, label="human", content="y")  # 91 chars
    assert pressure == ["block 'human' 91% full"]


async def test_shrinking_an_over_limit_block_asks_for_nothing(stores: Stores) -> None:
    await use(stores, memory_rethink, None, label="human", new_memory="x" * 180)
    pressure: list[str] = []
    result = await use(stores, memory_rethink, pressure, label="human", new_memory="x" * 150)
    assert "over its limit of 100" in result and pressure == []


def test_within_limit_allows_up_to_twice_the_limit() -> None:
    block = Block("b1", "human", "", limit=10)
    assert within_limit(block, "x" * 20) == "x" * 20
    with pytest.raises(ToolError):
        within_limit(block, "x" * 21)


async def test_an_over_limit_edit_never_fails_the_turn(bot: Bot) -> None:
    bot.llm.extend([call("core_memory_append", label="human", content="y" * 5500), reply("Noted!")])
    assert await bot.chat.say("zed", "remember this") == "Noted!"
    result = bot.llm.tool_requests[-1].messages[-1]["content"]
    assert "over its limit of 5,000: it will be condensed soon" in result
    assert len(await bot.block("zed", "human")) > 5000
