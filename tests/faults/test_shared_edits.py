"""50 agents editing one shared block in concurrent turns: no edit is lost.

Each agent runs a real turn (router, runner, step loop, memory tools) in which the scripted
model appends the agent's own line to the shared `org` block; then, in a second round, each
replaces its own line. Runs on SQLite on disk, and on PostgreSQL when one is reachable.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from botmem.app import App
from botmem.llm.base import Completion
from botmem.stores.memory_vectors import MemoryVectorIndex
from botmem.stores.sql import open_sql_stores
from botmem.testing import FakeAdapter, ScriptedLLM, call, reply
from botmem.testing.embeddings import HashEmbedder
from botmem.types import BlockSpec
from tests.helpers import make_settings
from tests.stores.conftest import _fresh_pg_database

AGENTS = 50
ORG = BlockSpec("org", "", limit=20_000, description="Facts about the organisation.")
ASK = re.compile(r"^(append|edit) (\d+)$")


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'botmem.db'}"
    else:
        async for url in _fresh_pg_database():
            yield url


def line(number: int) -> str:
    return f"Line from agent {number}."


def edited(number: int) -> str:
    return f"Line from agent {number}, edited."


def model(messages: list[dict[str, Any]]) -> Completion:
    """The user says `append N` or `edit N`; the model edits `org` once, then replies."""
    last = messages[-1]
    if last["role"] == "tool":
        return reply(f"Done: {last['content']}")
    asked = ASK.match(str(last["content"]))
    assert asked is not None, last
    kind, number = asked.group(1), int(asked.group(2))
    if kind == "append":
        return call("core_memory_append", label="org", content=line(number))
    return call(
        "core_memory_replace", label="org", old_content=line(number), new_content=edited(number)
    )


class EditsInFlight:
    """Wraps `blocks.edit` to count how many edits overlap (proof the turns ran concurrently)."""

    def __init__(self, app: App) -> None:
        self.now = self.most = 0
        self._edit = app.stores.blocks.edit
        app.stores.blocks.edit = self  # type: ignore[method-assign]

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            return await self._edit(*args, **kwargs)
        finally:
            self.now -= 1


async def run_round(app: App, chat: FakeAdapter, kind: str) -> None:
    ran = await asyncio.gather(
        *(chat.deliver(chat.inbound(f"user{n}", f"{kind} {n}")) for n in range(AGENTS))
    )
    assert all(ran)
    await app.router.drain()


async def test_fifty_agents_editing_one_shared_block_lose_nothing(database_url: str) -> None:
    llm = ScriptedLLM(responder=model)
    stores = await open_sql_stores(database_url, vectors=MemoryVectorIndex())
    settings = make_settings(runtime={"max_concurrent_turns": AGENTS})  # all turns at once
    app = await App.open(settings, llm=llm, embedder=HashEmbedder(), stores=stores)
    chat = FakeAdapter()
    await app.start([chat])
    agents = [f"fake:user{n}" for n in range(AGENTS)]
    for agent in agents:
        await stores.blocks.attach(agent, ORG, shared_name="org")
    overlap = EditsInFlight(app)

    await run_round(app, chat, "append")
    block = await stores.blocks.get(agents[0], "org")
    assert block is not None
    assert sorted(block.value.splitlines()) == sorted(line(n) for n in range(AGENTS))
    assert block.version == 1 + AGENTS
    assert len(chat.sent) == AGENTS
    assert not [m.text for m in chat.sent if "Error" in m.text]

    await run_round(app, chat, "edit")
    block = await stores.blocks.get(agents[-1], "org")
    assert block is not None
    assert sorted(block.value.splitlines()) == sorted(edited(n) for n in range(AGENTS))
    assert block.version == 1 + 2 * AGENTS
    edits = await stores.blocks.edits(agents[0], "org", limit=500)
    assert sorted(e.version for e in edits) == list(range(2, 2 + 2 * AGENTS))
    assert len(chat.sent) == 2 * AGENTS
    assert not [m.text for m in chat.sent if "Error" in m.text]
    assert await stores.inbox.unfinished() == []
    if database_url.startswith("postgresql"):
        assert overlap.most > 1, "the edits never overlapped: the test proved nothing"
    else:  # SQLite runs each edit inline, read and write in one transaction: never interleaved
        assert overlap.most == 1

    # Every agent sees every line on its next turn.
    assert await chat.say("user7", "append 1000") is not None
    prompt = llm.tool_requests[-2].system  # the step that made the call
    assert all(edited(n) in prompt for n in range(AGENTS))
    await app.stop()
    await app.aclose()
