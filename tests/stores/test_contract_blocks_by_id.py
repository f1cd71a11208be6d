"""Store contract: blocks addressed by id (what /v1/blocks needs). Runs on every backend."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from botmem.errors import NotFoundError, ToolError
from botmem.stores.base import Stores
from botmem.types import Block, BlockSpec
from tests.stores.conftest import Backend
from tests.stores.test_contract import PERSONA, TEAM, append_line

NOTES = BlockSpec("notes", "start\n", limit=1000, description="shared notes")
MISSING = uuid.UUID(int=0).hex


async def test_create_shared_is_named_by_its_id_and_listed_oldest_first(stores: Stores) -> None:
    notes = await stores.blocks.create_shared(NOTES)
    other = await stores.blocks.create_shared(BlockSpec("other", "x"))
    third = await stores.blocks.create_shared(BlockSpec("notes", "y"))
    await stores.blocks.attach("a", PERSONA)  # private: not among the shared blocks
    team = await stores.blocks.attach("a", TEAM, shared_name="guild:1")
    assert notes.shared_name == notes.id
    assert (notes.label, notes.value, notes.limit, notes.description) == (
        "notes",
        "start\n",
        1000,
        "shared notes",
    )
    assert (notes.version, notes.read_only) == (1, False)
    assert await stores.blocks.by_id(notes.id) == notes
    assert await stores.blocks.by_id(MISSING) is None
    listed = await stores.blocks.shared()
    assert [b.id for b in listed] == [notes.id, other.id, third.id, team.id]
    assert [b.id for b in await stores.blocks.shared("notes")] == [notes.id, third.id]
    assert await stores.blocks.shared("persona") == []
    assert await stores.blocks.agents_of(notes.id) == []


async def test_new_block_ids_are_uuid7_in_creation_order(stores: Stores) -> None:
    made = [await stores.blocks.create_shared(BlockSpec(f"b{n}")) for n in range(5)]
    private = await stores.blocks.attach("a", PERSONA)
    ids = [b.id for b in made] + [private.id]
    assert ids == sorted(ids)
    assert all(len(i) == 32 and uuid.UUID(i).version == 7 for i in ids)


async def test_update_changes_only_what_is_given(stores: Stores) -> None:
    notes = await stores.blocks.create_shared(NOTES)
    limited = await stores.blocks.update(notes.id, limit=50)
    assert (limited.limit, limited.description, limited.read_only) == (50, "shared notes", False)
    changed = await stores.blocks.update(notes.id, description="", read_only=True)
    assert (changed.limit, changed.description, changed.read_only) == (50, "", True)
    assert (changed.value, changed.version) == (notes.value, notes.version)
    assert await stores.blocks.by_id(notes.id) == changed
    with pytest.raises(NotFoundError):
        await stores.blocks.update(MISSING, limit=10)


async def test_edit_by_id_is_versioned_recorded_and_seen_by_every_agent(
    stores: Stores, backend: Backend
) -> None:
    notes = await stores.blocks.create_shared(NOTES)
    await stores.blocks.attach_by_id("a", notes.id)
    await stores.blocks.attach_by_id("b", notes.id)
    edit = await stores.blocks.edit_by_id(notes.id, append_line("from api"), editor="api")
    assert (edit.old_value, edit.new_value, edit.version) == ("start\n", "start\nfrom api\n", 2)
    assert (edit.agent_key, edit.label, edit.block_id, edit.edit_key) == (
        "api",
        "notes",
        notes.id,
        None,
    )
    assert edit.created_at == backend.clock.now
    seen_by_b = await stores.blocks.get("b", "notes")
    assert seen_by_b is not None and (seen_by_b.value, seen_by_b.version) == (edit.new_value, 2)
    assert await stores.blocks.edits("a", "notes") == [edit]
    await stores.blocks.edit("b", "notes", append_line("from b"))
    stored = await stores.blocks.by_id(notes.id)
    assert stored is not None and stored.value == "start\nfrom api\nfrom b\n"
    assert [e.agent_key for e in await stores.blocks.edits("a")] == ["b", "api"]


async def test_edit_by_id_that_raises_or_misses_writes_nothing(stores: Stores) -> None:
    notes = await stores.blocks.create_shared(NOTES)

    def refuse(block: Block) -> str:
        raise ToolError("too long")

    with pytest.raises(ToolError):
        await stores.blocks.edit_by_id(notes.id, refuse, editor="api")
    with pytest.raises(NotFoundError):
        await stores.blocks.edit_by_id(MISSING, append_line("x"), editor="api")
    assert await stores.blocks.by_id(notes.id) == notes


async def test_edits_by_id_and_by_agents_all_survive_concurrently(stores: Stores) -> None:
    notes = await stores.blocks.create_shared(BlockSpec("notes", "", limit=10_000))
    agents = [f"discord:guild:1:user:{i}" for i in range(20)]
    for agent in agents:
        await stores.blocks.attach_by_id(agent, notes.id)
    await asyncio.gather(
        *(stores.blocks.edit(a, "notes", append_line(f"from {a}")) for a in agents),
        *(
            stores.blocks.edit_by_id(notes.id, append_line(f"api {n}"), editor="api")
            for n in range(20)
        ),
    )
    block = await stores.blocks.by_id(notes.id)
    assert block is not None and block.version == 41
    expected = [f"from {a}" for a in agents] + [f"api {n}" for n in range(20)]
    assert sorted(block.value.splitlines()) == sorted(expected)


async def test_attach_by_id_links_under_its_label_once(stores: Stores) -> None:
    notes = await stores.blocks.create_shared(NOTES)
    await stores.blocks.attach("a", PERSONA)
    attached = await stores.blocks.attach_by_id("a", notes.id)
    again = await stores.blocks.attach_by_id("a", notes.id)
    assert attached == again
    assert (attached.id, attached.label, attached.value) == (notes.id, "notes", "start\n")
    assert [b.label for b in await stores.blocks.for_agent("a")] == ["persona", "notes"]
    await stores.blocks.attach_by_id("b", notes.id)
    assert await stores.blocks.agents_of(notes.id) == ["a", "b"]
    with pytest.raises(NotFoundError):
        await stores.blocks.attach_by_id("a", MISSING)


async def test_attach_by_id_keeps_a_label_the_agent_has(stores: Stores) -> None:
    own = await stores.blocks.attach("a", BlockSpec("notes", "mine"))
    notes = await stores.blocks.create_shared(NOTES)
    kept = await stores.blocks.attach_by_id("a", notes.id)
    assert kept == own
    assert await stores.blocks.agents_of(notes.id) == []
    assert [b.id for b in await stores.blocks.for_agent("a")] == [own.id]


async def test_concurrent_attach_by_id_of_one_label_links_one_block(stores: Stores) -> None:
    first = await stores.blocks.create_shared(NOTES)
    second = await stores.blocks.create_shared(NOTES)
    results = await asyncio.gather(
        *(stores.blocks.attach_by_id("a", b.id) for b in [first, second] * 5)
    )
    assert len({b.id for b in results}) == 1
    assert [b.id for b in await stores.blocks.for_agent("a")] == [results[0].id]


async def test_attaching_a_private_block_shares_it(stores: Stores) -> None:
    persona = await stores.blocks.attach("a", PERSONA)
    shared = await stores.blocks.attach_by_id("b", persona.id)
    assert shared.id == persona.id and shared.shared_name == persona.id
    assert [b.id for b in await stores.blocks.shared()] == [persona.id]
    await stores.blocks.edit("b", "persona", append_line(" Also kind."))
    await stores.wipe_agent("a")  # the block is no longer a's alone: it stays
    kept = await stores.blocks.get("b", "persona")
    assert kept is not None and kept.value == "I am helpful. Also kind.\n"
    assert await stores.blocks.agents_of(persona.id) == ["b"]


async def test_detach_by_id_unlinks_and_keeps_the_block(stores: Stores) -> None:
    notes = await stores.blocks.create_shared(NOTES)
    persona = await stores.blocks.attach("a", PERSONA)
    await stores.blocks.attach_by_id("a", notes.id)
    await stores.blocks.attach_by_id("b", notes.id)
    assert await stores.blocks.detach_by_id("a", notes.id) is True
    assert await stores.blocks.detach_by_id("a", notes.id) is False
    assert await stores.blocks.detach_by_id("a", MISSING) is False
    assert await stores.blocks.agents_of(notes.id) == ["b"]
    assert await stores.blocks.detach_by_id("a", persona.id) is True
    assert await stores.blocks.for_agent("a") == []
    kept = await stores.blocks.by_id(persona.id)  # a private block becomes a standalone one
    assert kept is not None and kept.shared_name == persona.id and kept.value == PERSONA.value
    assert [b.id for b in await stores.blocks.shared()] == [notes.id, persona.id]
    assert (await stores.blocks.attach_by_id("c", persona.id)).id == persona.id


async def test_delete_detaches_from_every_agent_and_drops_history(stores: Stores) -> None:
    notes = await stores.blocks.create_shared(NOTES)
    await stores.blocks.attach("a", PERSONA)
    for agent in ("a", "b"):
        await stores.blocks.attach_by_id(agent, notes.id)
        await stores.blocks.edit(agent, "notes", append_line(agent))
    assert await stores.blocks.delete(notes.id) is True
    assert await stores.blocks.delete(notes.id) is False
    assert await stores.blocks.by_id(notes.id) is None
    assert await stores.blocks.agents_of(notes.id) == []
    assert await stores.blocks.shared() == []
    assert [b.label for b in await stores.blocks.for_agent("a")] == ["persona"]
    assert await stores.blocks.for_agent("b") == []
    assert await stores.blocks.edits("a") == []
    with pytest.raises(NotFoundError):
        await stores.blocks.edit("b", "notes", append_line("late"))


async def test_delete_while_edits_run_loses_no_applied_edit(stores: Stores) -> None:
    """Every edit either lands before the delete or finds the block gone: no other error."""
    notes = await stores.blocks.create_shared(NOTES)
    await stores.blocks.attach_by_id("a", notes.id)

    async def edit(n: int) -> bool:
        try:
            await stores.blocks.edit_by_id(notes.id, append_line(f"{n}"), editor="api")
        except NotFoundError:
            return False
        return True

    results = await asyncio.gather(*(edit(n) for n in range(10)), stores.blocks.delete(notes.id))
    assert results[-1] is True
    assert await stores.blocks.by_id(notes.id) is None
    assert await stores.blocks.for_agent("a") == []


async def test_links_by_id_survive_reopening(backend: Backend) -> None:
    stores = await backend.open()
    notes = await stores.blocks.create_shared(NOTES)
    await stores.blocks.attach_by_id("a", notes.id)
    await stores.blocks.edit_by_id(notes.id, append_line("kept"), editor="api")
    if backend.url is not None:
        await stores.aclose()
        stores = await backend.open()
    try:
        kept = await stores.blocks.get("a", "notes")
        assert kept is not None and kept.value == "start\nkept\n" and kept.shared_name == notes.id
        assert await stores.blocks.agents_of(notes.id) == ["a"]
    finally:
        await stores.aclose()
