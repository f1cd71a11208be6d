"""Store contract, part 1: agents, blocks, wiping, migrations. Runs on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from botmem.errors import NotFoundError, ToolError
from botmem.events import InboundMessage
from botmem.stores.base import Stores
from botmem.stores.sql.engine import open_database
from botmem.stores.sql.migrations import MIGRATIONS, migrate
from botmem.stores.sql.schema import schema_version
from botmem.types import Block, BlockSpec, Message
from tests.stores.conftest import Backend

PERSONA = BlockSpec("persona", "I am helpful.", limit=200, description="who I am")
TEAM = BlockSpec("team", "", limit=10_000, description="shared notes")


def append_line(line: str) -> Callable[[Block], str]:
    return lambda block: block.value + line + "\n"


# --- agents ---------------------------------------------------------------------------


async def test_ensure_creates_once_and_get_returns_it(stores: Stores) -> None:
    assert await stores.agents.get("console:alice") is None
    state, created = await stores.agents.ensure("console:alice")
    again, created_again = await stores.agents.ensure("console:alice")
    assert (created, created_again) == (True, False)
    assert again == state
    assert state.created_at.tzinfo is not None
    assert state.created_at.utcoffset() == timedelta(0)
    assert (state.summary, state.context_start_id, state.metadata) == ("", 0, {})
    assert await stores.agents.get("console:alice") == state


async def test_concurrent_ensure_gives_one_agent(stores: Stores) -> None:
    results = await asyncio.gather(*(stores.agents.ensure("telegram:1") for _ in range(20)))
    assert sum(created for _, created in results) == 1
    assert len({state.created_at for state, _ in results}) == 1
    assert [s.agent_key for s in await stores.agents.all()] == ["telegram:1"]


async def test_touch_summary_all_delete(stores: Stores, backend: Backend) -> None:
    await stores.agents.ensure("b")
    await stores.agents.ensure("a")
    await stores.agents.touch("a")
    touched = backend.clock.now
    await stores.agents.save_summary("a", "we talked about cats", context_start_id=7)
    state = await stores.agents.get("a")
    assert state is not None
    assert state.last_active_at == touched
    assert (state.summary, state.context_start_id) == ("we talked about cats", 7)
    assert state.summary_at == backend.clock.now
    assert [s.agent_key for s in await stores.agents.all()] == ["a", "b"]
    await stores.agents.delete("a")
    await stores.agents.delete("a")  # deleting twice is fine
    assert await stores.agents.get("a") is None
    assert [s.agent_key for s in await stores.agents.all()] == ["b"]


async def test_metadata_is_merged_and_keys_removed(stores: Stores) -> None:
    await stores.agents.ensure("a")
    await stores.agents.set_metadata("a", {"timezone": "Europe/Paris", "n": 1})
    await stores.agents.set_metadata("a", {"n": None, "other": [1, 2]})
    state = await stores.agents.get("a")
    assert state is not None and state.metadata == {"timezone": "Europe/Paris", "other": [1, 2]}
    with pytest.raises(NotFoundError):
        await stores.agents.set_metadata("nobody", {"x": 1})


async def test_updating_a_missing_agent_raises(stores: Stores) -> None:
    with pytest.raises(NotFoundError):
        await stores.agents.touch("nobody")
    with pytest.raises(NotFoundError):
        await stores.agents.save_summary("nobody", "x", 1)


# --- blocks: attach -------------------------------------------------------------------


async def test_attach_private_blocks_in_order_and_idempotent(stores: Stores) -> None:
    persona = await stores.blocks.attach("a", PERSONA)
    human = await stores.blocks.attach("a", BlockSpec("human", "Name: ?"))
    again = await stores.blocks.attach("a", BlockSpec("persona", "something else"))
    assert again == persona
    assert (persona.value, persona.limit, persona.description) == (
        "I am helpful.",
        200,
        "who I am",
    )
    assert (persona.version, persona.shared_name, persona.read_only) == (1, None, False)
    assert len(persona.id) == 32
    assert [b.label for b in await stores.blocks.for_agent("a")] == ["persona", "human"]
    assert await stores.blocks.get("a", "human") == human
    # Another agent's persona is its own block.
    other = await stores.blocks.attach("b", PERSONA)
    assert other.id != persona.id
    assert await stores.blocks.get("b", "human") is None


async def test_attach_shared_block_links_one_block(stores: Stores) -> None:
    first = await stores.blocks.attach("a", TEAM, shared_name="guild:1")
    second = await stores.blocks.attach("b", BlockSpec("team", "ignored"), shared_name="guild:1")
    other_guild = await stores.blocks.attach("c", TEAM, shared_name="guild:2")
    assert first.id == second.id != other_guild.id
    assert second.value == "" and second.shared_name == "guild:1"
    await stores.blocks.edit("a", "team", append_line("from a"))
    seen_by_b = await stores.blocks.get("b", "team")
    assert seen_by_b is not None and seen_by_b.value == "from a\n"


async def test_concurrent_shared_attach_creates_one_block(stores: Stores) -> None:
    blocks = await asyncio.gather(
        *(stores.blocks.attach(f"agent:{i}", TEAM, shared_name="org") for i in range(10)),
        *(stores.blocks.attach("agent:0", TEAM, shared_name="org") for _ in range(5)),
    )
    assert len({b.id for b in blocks}) == 1
    assert [b.label for b in await stores.blocks.for_agent("agent:0")] == ["team"]


async def test_detach(stores: Stores) -> None:
    await stores.blocks.attach("a", PERSONA)
    shared = await stores.blocks.attach("a", TEAM, shared_name="g")
    await stores.blocks.attach("b", TEAM, shared_name="g")
    await stores.blocks.detach("a", "persona")
    await stores.blocks.detach("a", "team")
    await stores.blocks.detach("a", "missing")
    assert await stores.blocks.for_agent("a") == []
    kept = await stores.blocks.get("b", "team")
    assert kept is not None and kept.id == shared.id


# --- blocks: edit ---------------------------------------------------------------------


async def test_edit_applies_to_current_value_and_keeps_history(
    stores: Stores, backend: Backend
) -> None:
    await stores.blocks.attach("a", BlockSpec("human", "Name: Ann"))
    first = await stores.blocks.edit("a", "human", append_line("Likes: tea"))
    second = await stores.blocks.edit(
        "a", "human", lambda b: b.value.replace("tea", "coffee"), edit_key="turn1:call2"
    )
    block = await stores.blocks.get("a", "human")
    assert block is not None
    assert block.value == "Name: AnnLikes: coffee\n"
    assert block.version == 3 and block.updated_at == second.created_at
    assert (first.old_value, first.new_value, first.version) == (
        "Name: Ann",
        "Name: AnnLikes: tea\n",
        2,
    )
    assert (second.agent_key, second.edit_key, second.label) == ("a", "turn1:call2", "human")
    assert second.created_at == backend.clock.now
    assert await stores.blocks.edits("a") == [second, first]
    assert await stores.blocks.edits("a", "human", limit=1) == [second]
    assert await stores.blocks.edits("a", "persona") == []


async def test_edit_that_raises_writes_nothing(stores: Stores) -> None:
    await stores.blocks.attach("a", PERSONA)

    def refuse(block: Block) -> str:
        raise ToolError("old text not found")

    with pytest.raises(ToolError):
        await stores.blocks.edit("a", "persona", refuse, edit_key="k")
    block = await stores.blocks.get("a", "persona")
    assert block is not None and (block.value, block.version) == ("I am helpful.", 1)
    assert await stores.blocks.edits("a") == []
    # The key was not used up: a later edit with it applies.
    applied = await stores.blocks.edit("a", "persona", append_line("!"), edit_key="k")
    assert applied.version == 2


async def test_edit_key_is_applied_once(stores: Stores) -> None:
    await stores.blocks.attach("a", TEAM)
    first = await stores.blocks.edit("a", "team", append_line("once"), edit_key="t1:c1")
    replay = await stores.blocks.edit("a", "team", append_line("once"), edit_key="t1:c1")
    assert replay == first
    block = await stores.blocks.get("a", "team")
    assert block is not None and block.value == "once\n" and block.version == 2
    assert len(await stores.blocks.edits("a")) == 1


async def test_concurrent_edits_with_one_edit_key_apply_once(stores: Stores) -> None:
    await stores.blocks.attach("a", TEAM)
    edits = await asyncio.gather(
        *(stores.blocks.edit("a", "team", append_line("x"), edit_key="k") for _ in range(10))
    )
    assert len(set(edits)) == 1
    block = await stores.blocks.get("a", "team")
    assert block is not None and block.value == "x\n"


async def test_unchanged_edit_is_not_recorded(stores: Stores) -> None:
    await stores.blocks.attach("a", PERSONA)
    edit = await stores.blocks.edit("a", "persona", lambda b: b.value)
    assert (edit.old_value, edit.new_value, edit.version) == ("I am helpful.",) * 2 + (1,)
    block = await stores.blocks.get("a", "persona")
    assert block is not None and block.version == 1
    assert await stores.blocks.edits("a") == []


async def test_edit_missing_label_raises_not_found(stores: Stores) -> None:
    await stores.blocks.attach("a", PERSONA)
    with pytest.raises(NotFoundError):
        await stores.blocks.edit("a", "human", append_line("x"))
    with pytest.raises(NotFoundError):
        await stores.blocks.edit("b", "persona", append_line("x"))


async def test_fifty_concurrent_appenders_lose_nothing(stores: Stores) -> None:
    """Each agent sees the shared block as `team`; every appended line must survive."""
    agents = [f"discord:guild:1:user:{i}" for i in range(50)]
    for agent in agents:
        await stores.blocks.attach(agent, TEAM, shared_name="discord:guild:1")

    await asyncio.gather(
        *(stores.blocks.edit(a, "team", append_line(f"note from {a}")) for a in agents)
    )

    block = await stores.blocks.get(agents[0], "team")
    assert block is not None
    assert sorted(block.value.splitlines()) == sorted(f"note from {a}" for a in agents)
    assert block.version == 51
    history = await stores.blocks.edits(agents[0], "team", limit=100)
    assert sorted(e.version for e in history) == list(range(2, 52))
    assert {e.agent_key for e in history} == set(agents)


# --- wiping ---------------------------------------------------------------------------


async def test_wipe_agent_forgets_one_agent_only(stores: Stores) -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    for agent in ("a", "b"):
        await stores.agents.ensure(agent)
        await stores.blocks.attach(agent, PERSONA)
        await stores.blocks.attach(agent, TEAM, shared_name="g")
        await stores.blocks.edit(agent, "team", append_line(agent), edit_key="k")
        await stores.history.append([Message(agent, "user", f"hi from {agent}", now)])
        await stores.inbox.add(InboundMessage("console", f"m-{agent}", agent, "hi"))

    await stores.wipe_agent("a")

    assert await stores.agents.get("a") is None
    assert await stores.blocks.for_agent("a") == []
    assert await stores.history.count("a") == 0
    assert [i.inbound.agent_key for i in await stores.inbox.unfinished()] == ["b"]
    # Shared content and the other agent stay; a new "a" can reuse its old edit key.
    team = await stores.blocks.get("b", "team")
    assert team is not None and team.value == "a\nb\n"
    assert [e.agent_key for e in await stores.blocks.edits("b", "team")] == ["b"]
    assert await stores.history.count("b") == 1
    await stores.blocks.attach("a", TEAM, shared_name="g")
    again = await stores.blocks.edit("a", "team", append_line("a again"), edit_key="k")
    assert again.new_value == "a\nb\na again\n"


# --- migrations -----------------------------------------------------------------------


async def test_reopening_keeps_data_and_schema_version(sql_backend: Backend) -> None:
    backend = sql_backend
    assert backend.url is not None
    first = await backend.open()
    await first.agents.ensure("a")
    await first.blocks.attach("a", PERSONA)
    await first.aclose()
    second = await backend.open()
    assert (await second.agents.get("a")) is not None
    assert [b.label for b in await second.blocks.for_agent("a")] == ["persona"]
    await second.aclose()

    db = open_database(backend.url)
    try:
        assert await migrate(db) == []
        async with db.read() as conn:
            versions = (await conn.execute(select(schema_version.c.version))).scalars().all()
    finally:
        await db.close()
    assert sorted(versions) == [m.version for m in MIGRATIONS]


async def test_concurrent_first_migrations_apply_once(sql_backend: Backend) -> None:
    assert sql_backend.url is not None
    databases = [open_database(sql_backend.url) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(migrate(db) for db in databases))
    finally:
        for db in databases:
            await db.close()
    assert sorted(applied) == [[], [], [m.version for m in MIGRATIONS]]
