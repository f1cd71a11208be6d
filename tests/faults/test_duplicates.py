"""One platform event delivered 1,000 times at once, and again after a restart: one reply.

Platforms re-deliver (Slack retries, Telegram after a reconnect), sometimes in bursts; the
inbox is unique on (source, message_id), so only one delivery may run a turn and be answered.
Runs on SQLite on disk, and on PostgreSQL when one is reachable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from botmem.app import App
from botmem.events import InboundMessage, OutboundMessage
from botmem.stores.memory_vectors import MemoryVectorIndex
from botmem.stores.sql import open_sql_stores
from botmem.testing import FakeAdapter, ScriptedLLM, reply
from botmem.testing.embeddings import HashEmbedder
from tests.helpers import make_settings
from tests.stores.conftest import _fresh_pg_database

COPIES = 1000


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'botmem.db'}"
    else:
        async for url in _fresh_pg_database():
            yield url


async def open_on(url: str, llm: ScriptedLLM) -> tuple[App, FakeAdapter]:
    stores = await open_sql_stores(url, vectors=MemoryVectorIndex())
    app = await App.open(make_settings(), llm=llm, embedder=HashEmbedder(), stores=stores)
    chat = FakeAdapter()
    await app.start([chat])
    await app.router.drain()  # whatever the start replayed
    return app, chat


async def close(app: App) -> None:
    await app.stop()
    await app.aclose()


def answers() -> ScriptedLLM:
    count = iter(range(1, 1_000_000))
    return ScriptedLLM(responder=lambda messages: reply(f"Answer {next(count)}."))


async def burst(chat: FakeAdapter, inbound: InboundMessage, copies: int = COPIES) -> list[bool]:
    """Deliver `copies` copies of one event at once; True for each that ran a turn."""
    return list(await asyncio.gather(*(chat.deliver(inbound) for _ in range(copies))))


async def test_a_burst_of_one_event_gets_one_turn_and_one_reply(database_url: str) -> None:
    llm = answers()
    app, chat = await open_on(database_url, llm)
    inbound = chat.inbound("alice", "hello", message_id="platform-msg-1")

    ran = await burst(chat, inbound)
    await app.router.drain()

    assert ran.count(True) == 1
    assert len(llm.tool_requests) == 1
    assert [m.text for m in chat.sent] == ["Answer 1."]
    history = await app.stores.history.since(inbound.agent_key, 0)
    assert [(m.role, m.content) for m in history] == [("user", "hello"), ("assistant", "Answer 1.")]
    assert await app.stores.inbox.unfinished() == []

    # A different message id is a new event, even with the same text.
    assert await chat.say("alice", "hello", message_id="platform-msg-2") == "Answer 2."
    await close(app)


async def test_a_burst_of_one_command_gets_one_answer(database_url: str) -> None:
    llm = answers()
    app, chat = await open_on(database_url, llm)
    assert await chat.say("alice", "hi") == "Answer 1."
    command = replace(chat.inbound("alice", "show", message_id="slash-1"), kind="command")

    ran = await burst(chat, command)
    await app.router.drain()

    assert ran.count(True) == 1
    assert len(chat.sent) == 2 and "persona" in chat.sent[1].text
    assert len(llm.requests) == 1  # commands never reach the model
    await close(app)


async def test_a_redelivery_after_a_restart_gets_no_second_reply(database_url: str) -> None:
    llm = answers()
    first, chat = await open_on(database_url, llm)
    inbound = chat.inbound("alice", "hello", message_id="platform-msg-1")
    assert await chat.deliver(inbound) is True
    assert [m.text for m in chat.sent] == ["Answer 1."]
    await close(first)

    second, chat = await open_on(database_url, llm)  # a new process on the same database
    assert chat.sent == []  # nothing left to replay
    late = replace(inbound, text="hello (re-delivered)")  # platforms may re-render the text
    ran = await burst(chat, inbound, 100) + await burst(chat, late, 100)
    await second.router.drain()
    assert ran.count(True) == 0
    assert chat.sent == []
    assert len(llm.tool_requests) == 1
    assert await second.stores.history.count(inbound.agent_key) == 2

    assert await chat.say("alice", "new message") == "Answer 2."  # and it still works
    await close(second)


class BrokenAdapter(FakeAdapter):
    """A platform whose send fails (the network went away after the turn ran)."""

    async def send(self, message: OutboundMessage) -> None:
        raise ConnectionError("platform unreachable")


async def test_an_unsent_reply_is_sent_once_after_a_restart_despite_redeliveries(
    database_url: str,
) -> None:
    llm = answers()
    stores = await open_sql_stores(database_url, vectors=MemoryVectorIndex())
    first = await App.open(make_settings(), llm=llm, embedder=HashEmbedder(), stores=stores)
    broken = BrokenAdapter()
    await first.start([broken])
    inbound = broken.inbound("alice", "hello", message_id="platform-msg-1")
    assert (await burst(broken, inbound, 200)).count(True) == 1
    await close(first)

    second, chat = await open_on(database_url, llm)
    assert [m.text for m in chat.sent] == ["Answer 1."]  # the stored reply, not a new turn
    assert (await burst(chat, inbound, 200)).count(True) == 0
    await second.router.drain()
    assert [m.text for m in chat.sent] == ["Answer 1."]
    assert len(llm.tool_requests) == 1
    assert await second.stores.inbox.unfinished() == []
    await close(second)
