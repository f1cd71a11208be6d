"""Blocks over the HTTP API, through Letta's client: an agent's core memory by label, shared
blocks by id (create, attach to many agents, edit, detach, delete), and the errors."""

from __future__ import annotations

import uuid

import pytest
from letta_client import (
    ConflictError,
    NotFoundError,
    UnprocessableEntityError,
)

from botmem.events import InboundMessage
from botmem.server.ids import agent_key
from botmem.testing.openai_server import text
from tests.server.conftest import Served

HUMAN = {"label": "human", "value": "Name: Ann.", "limit": 100}
PERSONA = {"label": "persona", "value": "I am Sam.", "read_only": True}
NO_BLOCK = f"block-{uuid.UUID(int=0)}"


async def make_agent(served: Served, name: str) -> str:
    agent = await served.client.agents.create(name=name, memory_blocks=[HUMAN, PERSONA])  # type: ignore[list-item]
    return agent.id


async def test_list_retrieve_and_modify_an_agents_blocks(served: Served) -> None:
    agent = await make_agent(served, "ann's")
    listed = [b async for b in served.client.agents.blocks.list(agent, order="asc")]
    assert [b.label for b in listed] == ["human", "persona"]
    assert all(b.id and b.id.startswith("block-") for b in listed)
    human = await served.client.agents.blocks.retrieve("human", agent_id=agent)
    assert (human.id, human.value, human.limit) == (listed[0].id, "Name: Ann.", 100)

    changed = await served.client.agents.blocks.update(
        "human", agent_id=agent, value="Name: Ann. Likes tea.", description="about Ann"
    )
    assert (changed.value, changed.description, changed.limit) == (
        "Name: Ann. Likes tea.",
        "about Ann",
        100,
    )
    key = agent_key(agent)
    stored = await served.app.stores.blocks.get(key, "human")
    assert stored is not None
    assert (stored.value, stored.description, stored.version) == (changed.value, "about Ann", 2)
    [edit] = await served.app.stores.blocks.edits(key, "human")
    assert (edit.old_value, edit.new_value, edit.agent_key) == ("Name: Ann.", changed.value, key)


async def test_a_modified_block_is_in_the_next_prompt(served: Served) -> None:
    agent = await make_agent(served, "prompted")
    await served.client.agents.blocks.update(
        "human", agent_id=agent, value="Name: Ann. Allergic to cats."
    )
    served.llm.queue(text("Noted."))
    key = agent_key(agent)
    turn = await served.app.handle(
        InboundMessage(source="api", message_id="m1", agent_key=key, text="hi", user_id=key)
    )
    assert turn is not None
    await turn
    system = served.llm.requests[-1]["messages"][0]
    assert system["role"] == "system"
    assert "Name: Ann. Allergic to cats." in system["content"]
    assert "Name: Ann.\n" not in system["content"]


async def test_limit_and_renaming_are_refused_with_the_field_named(
    served: Served,
) -> None:
    agent = await make_agent(served, "strict")
    with pytest.raises(UnprocessableEntityError) as too_long:
        await served.client.agents.blocks.update("human", agent_id=agent, value="x" * 101)
    assert "value is 101 characters" in str(too_long.value.body)
    with pytest.raises(UnprocessableEntityError) as too_small:
        await served.client.agents.blocks.update("human", agent_id=agent, limit=5)
    assert "limit 5" in str(too_small.value.body)
    with pytest.raises(UnprocessableEntityError) as renamed:
        await served.client.agents.blocks.update("human", agent_id=agent, label="person")
    assert "label" in str(renamed.value.body)
    with pytest.raises(UnprocessableEntityError) as bad:
        await served.client.agents.blocks.update("human", agent_id=agent, limit=0)
    assert "limit" in str(bad.value.body)
    key = agent_key(agent)
    assert await served.app.stores.blocks.edits(key) == []  # nothing was written
    grown = await served.client.agents.blocks.update(
        "human", agent_id=agent, value="x" * 150, limit=200
    )
    assert (len(grown.value), grown.limit) == (150, 200)
    # read-only binds the agent's own tools, not the API (as in Letta)
    edited = await served.client.agents.blocks.update("persona", agent_id=agent, value="I am Bob.")
    assert (edited.value, edited.read_only) == ("I am Bob.", True)


async def test_a_shared_block_edited_through_one_agent_is_read_by_another(
    served: Served,
) -> None:
    ann, bob = await make_agent(served, "ann"), await make_agent(served, "bob")
    team = await served.client.blocks.create(label="team", value="Team: blue.", limit=500)
    assert team.id.startswith("block-") and (team.metadata or {})["shared"] is True
    for agent in (ann, bob):
        state = await served.client.agents.blocks.attach(team.id, agent_id=agent)
        assert [b.label for b in state.memory.blocks] == ["human", "persona", "team"]
    await served.client.agents.blocks.update("team", agent_id=ann, value="Team: blue. Demo Friday.")
    seen = await served.client.agents.blocks.retrieve("team", agent_id=bob)
    assert (seen.id, seen.value) == (team.id, "Team: blue. Demo Friday.")
    [edit] = await served.app.stores.blocks.edits(agent_key(bob), "team")
    assert edit.agent_key == agent_key(ann)

    users = [a.id async for a in served.client.blocks.agents.list(team.id, order="asc")]
    assert users == [ann, bob]
    state = await served.client.agents.blocks.detach(team.id, agent_id=ann)
    assert [b.label for b in state.memory.blocks] == ["human", "persona"]
    assert [a.id async for a in served.client.blocks.agents.list(team.id)] == [bob]
    assert (await served.client.blocks.retrieve(team.id)).value == "Team: blue. Demo Friday."

    await served.client.blocks.delete(team.id)
    with pytest.raises(NotFoundError):
        await served.client.blocks.retrieve(team.id)
    bob_blocks = [b.label async for b in served.client.agents.blocks.list(bob)]
    assert (
        "team" not in bob_blocks
        and await served.app.stores.blocks.get(agent_key(bob), "team") is None
    )


async def test_blocks_are_created_listed_by_label_and_modified_by_id(served: Served) -> None:
    made = [
        (await served.client.blocks.create(label=label, value=f"v{n}")).id
        for n, label in enumerate(["org", "team", "org", "team", "org"])
    ]
    await make_agent(served, "private blocks are not listed")
    assert [b.id async for b in served.client.blocks.list(limit=2, order="asc")] == made
    assert [b.id async for b in served.client.blocks.list(limit=2)] == made[::-1]
    orgs = await served.client.blocks.list(label="org", order="asc")
    assert [b.id for b in orgs.items] == made[0::2]

    agent = await make_agent(served, "user")
    await served.client.agents.blocks.attach(made[0], agent_id=agent)
    changed = await served.client.blocks.update(
        made[0], value="v0 and more", description="org notes"
    )
    assert (changed.value, changed.description, changed.label) == (
        "v0 and more",
        "org notes",
        "org",
    )
    [edit] = await served.app.stores.blocks.edits(agent_key(agent), "org")
    assert (edit.old_value, edit.new_value, edit.agent_key) == ("v0", "v0 and more", "api")
    seen = await served.client.agents.blocks.retrieve("org", agent_id=agent)
    assert seen.value == "v0 and more"


async def test_attaching_a_label_the_agent_has_is_a_conflict(served: Served) -> None:
    agent = await make_agent(served, "ann")
    other = await served.client.blocks.create(label="human", value="someone else")
    with pytest.raises(ConflictError) as taken:
        await served.client.agents.blocks.attach(other.id, agent_id=agent)
    assert "human" in str(taken.value.body)
    human = await served.client.agents.blocks.retrieve("human", agent_id=agent)
    assert human.value == "Name: Ann."
    again = await served.client.agents.blocks.attach(human.id, agent_id=agent)  # its own: fine
    assert [b.label for b in again.memory.blocks] == ["human", "persona"]


async def test_unknown_agents_blocks_and_labels_are_404_and_bad_bodies_422(
    served: Served,
) -> None:
    agent = await make_agent(served, "ann")
    team = await served.client.blocks.create(label="team", value="")
    ghost = "agent-00000000-0000-4000-8000-000000000000"
    with pytest.raises(NotFoundError):
        await served.client.agents.blocks.list(ghost)
    with pytest.raises(NotFoundError):
        await served.client.agents.blocks.retrieve("nope", agent_id=agent)
    with pytest.raises(NotFoundError):
        await served.client.agents.blocks.update("nope", agent_id=agent, value="x")
    for missing in (NO_BLOCK, "not-a-block", team.id.replace("block-", "")):
        with pytest.raises(NotFoundError):
            await served.client.blocks.retrieve(missing)
    with pytest.raises(NotFoundError):
        await served.client.agents.blocks.attach(NO_BLOCK, agent_id=agent)
    with pytest.raises(NotFoundError):
        await served.client.agents.blocks.detach(team.id, agent_id=agent)  # not attached
    with pytest.raises(NotFoundError):
        await served.client.blocks.agents.list(NO_BLOCK)
    await served.client.blocks.delete(team.id)
    with pytest.raises(NotFoundError):
        await served.client.blocks.delete(team.id)
    with pytest.raises(UnprocessableEntityError) as bad:
        await served.client.blocks.create(label="team", value=5)  # type: ignore[arg-type]
    assert "value" in str(bad.value.body)
    with pytest.raises(UnprocessableEntityError) as long:
        await served.client.blocks.create(label="team", value="x" * 20, limit=10)
    assert "value is 20 characters" in str(long.value.body)
    assert await served.app.stores.blocks.shared() == []
