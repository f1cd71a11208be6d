"""Per-agent limits: a message rate and token budgets, answered politely without the LLM."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from botmem import router
from botmem.app import App
from botmem.errors import StoreError
from botmem.events import InboundMessage
from botmem.limits import CHECKIN_BUDGET_REPLY, RATE_REPLY, USAGE_KEY, about
from botmem.stores.memory_vectors import MemoryVectorIndex
from botmem.stores.sql import open_sql_stores
from botmem.testing import FakeAdapter, FrozenClock, ScriptedLLM, call, reply
from botmem.testing.embeddings import HashEmbedder
from tests.helpers import make_settings, open_app

ANN = "fake:ann"
BUDGET_REFUSAL = "I've reached my usage limit for you for now; try again in about"


def answer(_messages: list[dict[str, Any]]) -> Any:
    return reply("ok")


@dataclass
class Rig:
    app: App
    chat: FakeAdapter
    llm: ScriptedLLM
    clock: FrozenClock

    async def say(self, text: str, user: str = "ann") -> str | None:
        return await self.chat.say(user, text)

    async def usage(self, agent_key: str = ANN) -> int:
        state = await self.app.stores.agents.get(agent_key)
        assert state is not None
        return sum(state.metadata.get(USAGE_KEY, {}).values())


async def open_rig(limits: dict[str, object], **parts: Any) -> Rig:
    clock = parts.pop("clock", None) or FrozenClock()
    llm = parts.pop("llm", None) or ScriptedLLM(responder=answer)
    settings = make_settings(limits=limits)
    if "stores" in parts:
        app = await App.open(settings, llm=llm, embedder=HashEmbedder(), clock=clock, **parts)
    else:
        app = await open_app(settings, llm, clock=clock)
    chat = FakeAdapter()
    await app.start([chat])
    return Rig(app, chat, llm, clock)


async def close(rig: Rig) -> None:
    await rig.app.stop()
    await rig.app.aclose()


@pytest.fixture
async def rated() -> AsyncIterator[Rig]:
    """Three messages a minute, no token budget."""
    rig = await open_rig({"messages_per_minute": 3, "tokens_per_hour": 0, "tokens_per_day": 0})
    yield rig
    await close(rig)


def scheduled(text: str, message_id: str = "job:1:now") -> InboundMessage:
    return InboundMessage(
        source="fake",
        message_id=message_id,
        agent_key=ANN,
        text=f"Check-in 1 that you scheduled: {text}",
        user_id="ann",
        kind="scheduled",
    )


def command(text: str) -> InboundMessage:
    return InboundMessage(
        source="fake", message_id=f"cmd-{text}", agent_key=ANN, text=text, kind="command"
    )


async def run(rig: Rig, inbound: InboundMessage) -> str:
    before = len(rig.chat.sent)
    assert await rig.chat.deliver(inbound)
    (sent,) = rig.chat.sent[before:]
    return sent.text


async def test_messages_over_the_rate_are_answered_politely_and_stored(
    rated: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    assert [await rated.say(f"hello {i}") for i in range(3)] == ["ok"] * 3
    caplog.set_level(logging.WARNING, logger="botmem.limits")
    assert await rated.say("secret plans") == RATE_REPLY
    assert len(rated.llm.requests) == 3  # the refused message never reached the model
    refused = rated.chat.inbound("ann", "once more", message_id="evt-x")
    assert await rated.chat.deliver(refused)
    assert rated.chat.sent[-1].text == RATE_REPLY
    assert await rated.app.stores.inbox.add(refused) is None  # stored
    assert await rated.app.stores.inbox.unfinished() == []  # replied and delivered
    assert await rated.chat.say("ann", "once more", message_id="evt-x") is None  # one reply
    history = await rated.app.stores.history.since(ANN, 0)
    assert [m.content for m in history if m.role == "user"] == [f"hello {i}" for i in range(3)]
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 2  # one line per refused turn
    assert f"agent {ANN}" in lines[0] and "messages_per_minute 3/3" in lines[0]
    assert "secret" not in caplog.text


async def test_the_window_slides(rated: Rig) -> None:
    await rated.say("one")
    rated.clock.advance(seconds=30)
    await rated.say("two")
    await rated.say("three")
    assert await rated.say("four") == RATE_REPLY
    rated.clock.advance(seconds=30)  # "one" left the window, the other two did not
    assert await rated.say("five") == "ok"
    assert await rated.say("six") == RATE_REPLY
    rated.clock.advance(minutes=1)
    assert [await rated.say(f"again {i}") for i in range(3)] == ["ok"] * 3


async def test_limits_are_per_agent(rated: Rig) -> None:
    for i in range(4):
        await rated.say(f"ann {i}")
    assert await rated.say("still ann") == RATE_REPLY
    assert [await rated.say(f"bob {i}", user="bob") for i in range(3)] == ["ok"] * 3


async def test_commands_and_check_ins_are_not_rate_limited(rated: Rig) -> None:
    for i in range(3):
        await rated.say(f"hello {i}")
    assert await rated.say("too fast") == RATE_REPLY
    assert "Memory commands" in await run(rated, command("help"))
    assert await run(rated, scheduled("drink water")) == "ok"
    assert await rated.say("still too fast") == RATE_REPLY  # a check-in did not free a slot


async def test_a_limit_of_zero_is_off() -> None:
    rig = await open_rig({"messages_per_minute": 0, "tokens_per_hour": 0, "tokens_per_day": 0})
    assert [await rig.say(f"message {i}") for i in range(30)] == ["ok"] * 30
    state = await rig.app.stores.agents.get(ANN)
    assert state is not None and USAGE_KEY not in state.metadata  # nothing recorded when off
    await close(rig)


async def test_the_hourly_budget_refuses_then_resets(caplog: pytest.LogCaptureFixture) -> None:
    rig = await open_rig({"messages_per_minute": 0, "tokens_per_hour": 1, "tokens_per_day": 0})
    assert await rig.say("hello") == "ok"
    used = await rig.usage()
    assert used == sum(rig.llm.count_tokens(r.messages) + 1 for r in rig.llm.requests)
    caplog.set_level(logging.WARNING, logger="botmem.limits")
    assert await rig.say("again") == f"{BUDGET_REFUSAL} 60 minutes."
    assert len(rig.llm.requests) == 1
    assert f"tokens_per_hour {used}/1" in caplog.text
    assert "Memory commands" in await run(rig, command("help"))  # commands still work
    rig.clock.advance(minutes=59)
    assert await rig.say("nearly") == f"{BUDGET_REFUSAL} 1 minute."
    assert await rig.say("hi", user="bob") == "ok"  # someone else's budget
    rig.clock.advance(minutes=1)
    assert await rig.say("later") == "ok"
    await close(rig)


async def test_the_daily_budget_refuses_then_resets() -> None:
    limits = {"messages_per_minute": 0, "tokens_per_hour": 0, "tokens_per_day": 1}
    rig = await open_rig(limits)
    assert await rig.say("hello") == "ok"
    assert await rig.say("again") == f"{BUDGET_REFUSAL} 24 hours."
    rig.clock.advance(hours=23, minutes=30)
    assert await rig.say("nearly") == f"{BUDGET_REFUSAL} 30 minutes."
    rig.clock.advance(minutes=30)
    assert await rig.say("tomorrow") == "ok"
    await close(rig)


async def test_every_step_counts_and_a_turn_under_budget_finishes() -> None:
    llm = ScriptedLLM(
        [call("core_memory_append", label="human", content="Likes tea"), reply("Noted.")],
        responder=answer,
    )
    rig = await open_rig({"messages_per_minute": 0, "tokens_per_hour": 1}, llm=llm)
    assert await rig.say("I like tea") == "Noted."  # two steps, both run
    assert len(llm.requests) == 2
    assert await rig.usage() == sum(llm.count_tokens(r.messages) + 1 for r in llm.requests)
    await close(rig)


def tea(messages: list[dict[str, Any]]) -> Any:
    if messages[-1]["role"] == "tool":
        return reply("Noted.")
    return call("core_memory_append", label="human", content="Likes tea")


async def test_a_turn_that_fails_and_runs_again_counts_every_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Storing the first step fails (a locked database): the router runs the turn again,
    which calls the model again. Both runs spent tokens; both are counted."""
    monkeypatch.setattr(router, "STORE_RETRY_DELAYS", (0.01,))
    llm = ScriptedLLM(responder=tea)
    rig = await open_rig({"messages_per_minute": 0, "tokens_per_hour": 100_000}, llm=llm)
    real_append = rig.app.stores.history.append
    failed: list[bool] = []

    async def append_failing_once(items: Any) -> Any:
        if not failed and any(m.tool_calls for m in items):
            failed.append(True)
            raise StoreError("database stayed locked")
        return await real_append(items)

    rig.app.stores.history.append = append_failing_once  # type: ignore[method-assign]
    assert await rig.say("I like tea") == "Noted."
    assert failed and len(llm.requests) == 3  # step 1, step 1 again, step 2
    assert await rig.usage() == sum(llm.count_tokens(r.messages) + 1 for r in llm.requests)
    await close(rig)


async def test_check_ins_count_toward_the_budget_and_over_it_send_a_note() -> None:
    rig = await open_rig({"messages_per_minute": 0, "tokens_per_hour": 1, "tokens_per_day": 0})
    assert await run(rig, scheduled("drink water")) == "ok"
    assert await rig.usage() > 0
    text = await run(rig, scheduled("stretch", message_id="job:1:later"))
    assert text == CHECKIN_BUDGET_REPLY.format(wait="60 minutes")
    assert len(rig.llm.requests) == 1
    await close(rig)


async def test_the_budget_survives_a_restart(tmp_path: Path) -> None:
    clock = FrozenClock()
    url = f"sqlite:///{tmp_path / 'botmem.db'}"
    limits = {"messages_per_minute": 0, "tokens_per_hour": 1}
    first = await open_rig(
        limits, clock=clock, stores=await open_sql_stores(url, clock, MemoryVectorIndex())
    )
    assert await first.say("hello") == "ok"
    used = await first.usage()
    await close(first)

    clock.advance(minutes=20)
    second = await open_rig(
        limits, clock=clock, stores=await open_sql_stores(url, clock, MemoryVectorIndex())
    )
    assert await second.say("again") == f"{BUDGET_REFUSAL} 40 minutes."
    assert second.llm.requests == []
    assert await second.usage() == used
    clock.advance(minutes=40)
    assert await second.say("later") == "ok"
    await close(second)


def test_waits_are_worded_in_minutes_then_hours() -> None:
    assert about(timedelta(seconds=5)) == "1 minute"
    assert about(timedelta(minutes=59, seconds=1)) == "60 minutes"
    assert about(timedelta(minutes=90)) == "90 minutes"
    assert about(timedelta(hours=5, minutes=10)) == "5 hours"
