"""Archival memory over the HTTP API, through Letta's client: insert, search, list, delete."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from letta_client import NotFoundError, UnprocessableEntityError

from tests.server.conftest import Served


async def _agent(served: Served, name: str = "a") -> str:
    return (await served.client.agents.create(name=name, memory_blocks=[])).id


async def test_an_inserted_passage_is_found_by_search_and_listed(served: Served) -> None:
    agent = await _agent(served)
    passages = served.client.agents.passages
    (cat,) = await passages.create(agent, text="Ann's cat is called Tom", tags=["Pets", "pets "])
    assert cat.id and cat.id.startswith("passage-")
    assert cat.text == "Ann's cat is called Tom" and cat.tags == ["pets"]
    assert (cat.model_extra or {})["agent_id"] == agent
    await passages.create(agent, text="The flight to Lisbon leaves on Friday", tags=["travel"])

    found = await passages.search(agent, query="what is the cat called")
    assert found.count == len(found.results) == 2
    assert found.results[0].id == cat.id
    assert found.results[0].content == "Ann's cat is called Tom"
    assert found.results[0].tags == ["pets"]
    assert datetime.fromisoformat(found.results[0].timestamp).tzinfo is not None

    by_tag = await passages.search(agent, query="cat", tags=["travel"])
    assert [r.content for r in by_tag.results] == ["The flight to Lisbon leaves on Friday"]
    either = await passages.search(agent, query="cat", tags=["travel", "pets"])
    assert len(either.results) == 2
    both = await passages.search(agent, query="cat", tags=["travel", "pets"], tag_match_mode="all")
    assert both.results == []
    one = await passages.search(agent, query="cat", top_k=1)
    assert [r.id for r in one.results] == [cat.id]
    listed = await passages.list(agent)
    assert [p.text for p in listed] == [
        "Ann's cat is called Tom",
        "The flight to Lisbon leaves on Friday",
    ]
    only = await passages.list(agent, search="LISBON")
    assert [p.text for p in only] == ["The flight to Lisbon leaves on Friday"]


async def test_the_agents_own_search_tool_sees_api_passages(served: Served) -> None:
    agent = await _agent(served)
    await served.client.agents.passages.create(agent, text="Bob's birthday is on 3 May")
    key = (await served.client.agents.retrieve(agent)).metadata["agent_key"]
    found = await served.app.retriever.search_passages(key, "birthday", limit=5)
    assert [p.text for p in found] == ["Bob's birthday is on 3 May"]


async def test_list_pages_to_the_end_both_ways(served: Served) -> None:
    agent = await _agent(served)
    passages = served.client.agents.passages
    made = [(await passages.create(agent, text=f"note number {n}"))[0].id for n in range(7)]
    seen: list[str] = []
    after = None
    while page := await passages.list(agent, limit=3, after=after):
        seen += [p.id for p in page if p.id]
        after = page[-1].id
    assert seen == made
    newest = await passages.list(agent, limit=2, ascending=False)
    assert [p.id for p in newest] == made[:-3:-1]
    before = await passages.list(agent, before=made[3], limit=2)
    assert [p.id for p in before] == made[1:3]


async def test_dates_filter_the_search(served: Served) -> None:
    agent = await _agent(served)
    passages = served.client.agents.passages
    await passages.create(agent, text="old lunch note", created_at=datetime(2024, 1, 5, tzinfo=UTC))
    await passages.create(agent, text="new lunch note", created_at=datetime(2025, 6, 1, tzinfo=UTC))
    found = await passages.search(
        agent, query="lunch note", start_datetime=datetime(2025, 1, 1, tzinfo=UTC)
    )
    assert [r.content for r in found.results] == ["new lunch note"]
    early = await passages.search(agent, query="lunch note", end_datetime="2025-01-01")
    assert [r.content for r in early.results] == ["old lunch note"]


async def test_delete_and_404s(served: Served) -> None:
    agent, other = await _agent(served, "a"), await _agent(served, "b")
    passages = served.client.agents.passages
    (kept,) = await passages.create(agent, text="keep this one")
    (gone,) = await passages.create(agent, text="drop this one")
    assert gone.id and kept.id
    with pytest.raises(NotFoundError):  # another agent's passage is not there for this one
        await passages.delete(gone.id, agent_id=other)
    await passages.delete(gone.id, agent_id=agent)
    assert [p.id for p in await passages.list(agent)] == [kept.id]
    found = await passages.search(agent, query="drop this one")
    assert [r.id for r in found.results] == [kept.id]
    with pytest.raises(NotFoundError):
        await passages.delete(gone.id, agent_id=agent)
    with pytest.raises(NotFoundError):
        await passages.delete("passage-x", agent_id=agent)
    with pytest.raises(NotFoundError):
        await passages.list("agent-00000000-0000-4000-8000-000000000000")
    assert await passages.list(other) == []
    assert (await passages.search(other, query="keep this one")).results == []


async def test_bad_passages_are_422(served: Served) -> None:
    agent = await _agent(served)
    with pytest.raises(UnprocessableEntityError):
        await served.client.agents.passages.create(agent, text="")
    with pytest.raises(UnprocessableEntityError) as blank:
        await served.client.agents.passages.create(agent, text="   ")
    assert "blank" in str(blank.value.body)
