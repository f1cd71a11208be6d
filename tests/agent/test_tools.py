"""@tool: schemas from type hints and docstrings, argument checks, custom tools in a turn."""

from __future__ import annotations

from typing import Literal

import pytest

from botmem.agent.memory_tools import BUILTIN_TOOLS
from botmem.agent.tools import Tool, ToolContext, Toolset, tool
from botmem.app import App
from botmem.errors import ToolError
from botmem.stores.memory import memory_stores
from botmem.testing import FakeAdapter, ScriptedLLM, call, reply
from botmem.testing.embeddings import HashEmbedder
from tests.helpers import make_settings, open_app


@tool
async def book_table(
    ctx: ToolContext,
    restaurant: str,
    people: int,
    when: str | None = None,
    seating: Literal["inside", "outside"] = "inside",
    tags: list[str] | None = None,
) -> str:
    """Book a table at a restaurant.

    Args:
        restaurant: Name of the restaurant.
        people: How many guests,
            including the person asking.
        when: ISO date and time.
        seating: Where to sit.
        tags: Notes for the staff.
    """
    return f"{ctx.agent_key} booked {restaurant} for {people} ({seating})"


def test_schema_comes_from_hints_and_docstring() -> None:
    assert isinstance(book_table, Tool)
    fn = book_table.schema()["function"]
    assert fn["name"] == "book_table"
    assert fn["description"] == "Book a table at a restaurant."
    props = fn["parameters"]["properties"]
    assert props["restaurant"] == {"type": "string", "description": "Name of the restaurant."}
    assert props["people"]["type"] == "integer"
    assert props["people"]["description"] == "How many guests, including the person asking."
    assert props["when"]["type"] == "string"
    assert props["seating"]["enum"] == ["inside", "outside"]
    assert props["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "Notes for the staff.",
    }
    assert fn["parameters"]["required"] == ["restaurant", "people"]


def test_arguments_are_checked() -> None:
    with pytest.raises(ToolError, match="must be a integer"):
        book_table.parse_arguments('{"restaurant": "x", "people": "two"}')
    with pytest.raises(ToolError, match="one of"):
        book_table.parse_arguments('{"restaurant": "x", "people": 2, "seating": "roof"}')
    with pytest.raises(ToolError, match="unknown argument"):
        book_table.parse_arguments('{"restaurant": "x", "people": 2, "color": "red"}')
    with pytest.raises(ToolError, match="JSON object"):
        book_table.parse_arguments("[1]")
    assert book_table.parse_arguments('{"restaurant": "x", "people": 2}') == {
        "restaurant": "x",
        "people": 2,
    }


def test_builtin_tools_have_the_public_names() -> None:
    assert [t.name for t in BUILTIN_TOOLS] == [
        "send_message",
        "core_memory_append",
        "core_memory_replace",
        "memory_rethink",
        "conversation_search",
        "conversation_search_date",
    ]
    for item in BUILTIN_TOOLS:
        assert item.description and all(
            "description" in p for p in item.parameters["properties"].values()
        )


def test_tool_definitions_are_validated() -> None:
    def sync_fn(ctx: ToolContext) -> str:
        return ""

    with pytest.raises(TypeError, match="async"):
        tool(sync_fn)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two tools"):
        Toolset([book_table, book_table])


async def test_a_custom_tool_runs_in_a_turn() -> None:
    llm = ScriptedLLM([call("book_table", restaurant="Luigi's", people=2), reply("Booked!")])
    app = await App.open(
        make_settings(),
        llm=llm,
        stores=memory_stores(),
        embedder=HashEmbedder(),
        tools=[book_table],
    )
    async with app:
        chat = FakeAdapter()
        await app.start([chat])
        assert await chat.say("kim", "book Luigi's for two") == "Booked!"
    offered = [t["function"]["name"] for t in llm.tool_requests[0].tools or []]
    assert "book_table" in offered
    assert llm.tool_requests[1].messages[-1]["content"] == "fake:kim booked Luigi's for 2 (inside)"


async def test_a_crashing_custom_tool_is_reported_to_the_model() -> None:
    @tool
    async def flaky(ctx: ToolContext) -> str:
        """Always breaks."""
        raise RuntimeError("boom")

    llm = ScriptedLLM([call("flaky"), reply("sorry, that failed")])
    async with await open_app(make_settings(), llm, tools=[flaky]) as app:
        chat = FakeAdapter()
        await app.start([chat])
        assert await chat.say("lee", "try it") == "sorry, that failed"
    assert "failed unexpectedly (RuntimeError)" in llm.tool_requests[1].messages[-1]["content"]
