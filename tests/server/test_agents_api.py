"""Agents over the HTTP API, through Letta's client: create, list, retrieve, modify, delete."""

from __future__ import annotations

import httpx
import pytest
from letta_client import APIStatusError, AsyncLetta, NotFoundError, UnprocessableEntityError

from tests.server.conftest import API_KEY, Served


async def test_create_takes_letta_hello_world_arguments(served: Served) -> None:
    agent = await served.client.agents.create(
        model="openai/gpt-4.1",
        memory_blocks=[
            {"label": "human", "value": "The human's name is Chad. They like vibe coding."},
            {"label": "persona", "value": "My name is Sam, the all-knowing sentient AI."},
        ],
        tools=["web_search", "run_code"],
    )
    assert agent.id.startswith("agent-")
    values = {b.label: b.value for b in agent.memory.blocks}
    assert values["human"] == "The human's name is Chad. They like vibe coding."
    assert values["persona"] == "My name is Sam, the all-knowing sentient AI."
    assert agent.llm_config.model == "gpt-4.1"
    assert agent.model == "openai/gpt-4.1"
    warnings = (agent.model_extra or {}).get("warnings")
    assert warnings == ["tools this server does not have were ignored: web_search, run_code"]
    assert "send_message" in [t.name for t in agent.tools]
    again = await served.client.agents.retrieve(agent.id)
    assert again.id == agent.id and again.name == agent.name


async def test_list_pages_by_cursor_until_the_end(served: Served) -> None:
    made = [
        (await served.client.agents.create(name=f"a{n}", memory_blocks=[])).id for n in range(7)
    ]
    seen = [a.id async for a in served.client.agents.list(limit=3, order="asc")]
    assert seen == made
    newest_first = [a.id async for a in served.client.agents.list(limit=2)]
    assert newest_first == made[::-1]
    named = await served.client.agents.list(name="a3")
    assert [a.id for a in named.items] == [made[3]]


async def test_modify_and_delete(served: Served) -> None:
    agent = await served.client.agents.create(name="old", memory_blocks=[])
    changed = await served.client.agents.update(
        agent.id, name="new", system="You are terse.", tags=["x"]
    )
    assert (changed.name, changed.system, changed.tags) == ("new", "You are terse.", ["x"])
    await served.client.agents.delete(agent.id)
    with pytest.raises(NotFoundError):
        await served.client.agents.retrieve(agent.id)


async def test_platform_agents_are_visible_and_an_agent_can_be_made_for_a_chat_user(
    served: Served,
) -> None:
    await served.app.runner.ensure_agent("telegram:42")
    ids = {a.id: a async for a in served.client.agents.list()}
    platform = next(a for a in ids.values() if a.metadata["agent_key"] == "telegram:42")
    assert (await served.client.agents.retrieve(platform.id)).name == "telegram:42"
    bound = await served.client.agents.create(metadata={"agent_key": "slack:T1:U9"})
    assert bound.metadata["agent_key"] == "slack:T1:U9"
    assert await served.app.stores.agents.get("slack:T1:U9") is not None
    with pytest.raises(APIStatusError) as taken:
        await served.client.agents.create(metadata={"agent_key": "slack:T1:U9"})
    assert taken.value.status_code == 409


async def test_unknown_agent_is_404_and_a_bad_body_is_422_naming_the_field(
    served: Served,
) -> None:
    with pytest.raises(NotFoundError):
        await served.client.agents.retrieve("agent-00000000-0000-4000-8000-000000000000")
    with pytest.raises(NotFoundError):
        await served.client.agents.retrieve("not-an-id")
    with pytest.raises(UnprocessableEntityError) as bad:
        await served.client.agents.create(memory_blocks=[{"label": "human", "value": 5}])  # type: ignore[list-item]
    assert "memory_blocks" in str(bad.value.body)


async def test_requests_without_the_key_are_refused(served: Served) -> None:
    stranger = AsyncLetta(base_url=served.url, api_key="wrong", max_retries=0)
    with pytest.raises(APIStatusError) as refused:
        await stranger.agents.list()
    assert refused.value.status_code == 401
    await stranger.close()
    async with httpx.AsyncClient(base_url=served.url) as http:
        assert (await http.get("/openapi.json")).status_code == 401
        ok = await http.get("/openapi.json", headers={"Authorization": f"Bearer {API_KEY}"})
        assert "/v1/agents/" in ok.json()["paths"]
