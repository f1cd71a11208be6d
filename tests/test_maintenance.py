"""Memory work while nobody talks: proactive summarization and the triggers of consolidation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from botmem.app import App
from botmem.llm.base import Completion
from botmem.testing import FakeAdapter, FrozenClock, ScriptedLLM, call, reply
from tests.helpers import make_settings, open_app

START = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
WINDOW = 8000
ABOVE = 0.6
LONG = "I went hiking near the lake and saw herons, then we cooked pasta at the hut. " * 5


@dataclass
class Rig:
    app: App
    adapter: FakeAdapter
    clock: FrozenClock
    llm: ScriptedLLM

    def summaries(self) -> int:
        return sum(1 for r in self.llm.requests if r.tools is None)

    def last_prompt_share(self) -> float:
        """What the last step's prompt filled of the window, tool schemas included."""
        last = self.llm.tool_requests[-1]
        tools = {"role": "system", "content": json.dumps(last.tools)}
        return self.llm.count_tokens([*last.messages, tools]) / WINDOW

    async def chat_until(self, user: str, share: float) -> int:
        """Talk until the agent's prompt fills `share` of the window; how many messages."""
        count = 0
        while not self.llm.tool_requests or self.last_prompt_share() < share:
            await self.adapter.say(user, f"{count}: {LONG}")
            count += 1
        return count


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    marker = request.node.get_closest_marker("settings")
    settings = make_settings(
        summarization={"idle_minutes": 30, "above": ABOVE}, **(marker.kwargs if marker else {})
    )
    clock = FrozenClock(START)
    llm = ScriptedLLM(context_window=WINDOW, responder=lambda _: reply("Sounds lovely. " * 20))
    app = await open_app(settings, llm, clock=clock)
    adapter = FakeAdapter()
    await app.start([adapter])
    yield Rig(app, adapter, clock, llm)
    await app.stop()
    await app.aclose()


async def test_an_idle_agent_over_the_share_is_summarized_ahead_of_time(rig: Rig) -> None:
    await rig.chat_until("alice", ABOVE + 0.02)
    assert rig.summaries() == 0 and rig.last_prompt_share() < 0.75  # below the turn's trigger
    history = await rig.app.stores.history.since("fake:alice", 0)

    rig.clock.advance(minutes=31)
    folded = await rig.app.maintenance.summarize_idle()

    assert folded > 0 and rig.summaries() == 1
    state = await rig.app.stores.agents.get("fake:alice")
    assert state is not None and state.summary.startswith("Summary of")
    assert state.context_start_id > history[0].id  # type: ignore[operator]
    assert await rig.app.stores.history.since("fake:alice", 0) == history  # nothing lost
    await rig.adapter.say("alice", "and today?")
    assert rig.summaries() == 1  # the next message did not pay for a summary
    assert rig.last_prompt_share() < 0.5 + 0.05


async def test_an_agent_talked_to_recently_is_left_alone(rig: Rig) -> None:
    await rig.chat_until("alice", ABOVE + 0.02)
    rig.clock.advance(minutes=10)
    assert await rig.app.maintenance.summarize_idle() == 0 and rig.summaries() == 0


async def test_an_idle_agent_under_the_share_is_left_alone(rig: Rig) -> None:
    await rig.adapter.say("alice", "hello")
    rig.clock.advance(minutes=31)
    assert await rig.app.maintenance.summarize_idle() == 0 and rig.summaries() == 0


async def test_an_agent_is_looked_at_once_per_activity(rig: Rig) -> None:
    await rig.chat_until("alice", ABOVE + 0.02)
    rig.clock.advance(minutes=31)
    assert await rig.app.maintenance.summarize_idle() > 0
    rig.clock.advance(minutes=31)
    assert await rig.app.maintenance.summarize_idle() == 0 and rig.summaries() == 1


async def test_never_while_a_turn_of_that_agent_runs(rig: Rig) -> None:
    await rig.chat_until("alice", ABOVE + 0.02)
    rig.clock.advance(minutes=31)
    gate = asyncio.Event()
    slow = SlowLLM(rig.llm, gate)
    rig.app.runner._loop._llm = slow  # type: ignore[attr-defined]  # the turn's steps wait
    turn = asyncio.create_task(rig.adapter.say("alice", "one more thing"))
    await slow.started.wait()

    assert await rig.app.maintenance.summarize_idle() == 0  # busy: skipped
    gate.set()
    await turn
    rig.app.runner._loop._llm = rig.llm  # type: ignore[attr-defined]
    assert await rig.app.maintenance.summarize_idle() == 0  # just active again: not idle


class SlowLLM:
    """Wraps the scripted model: every agent step waits for `gate`."""

    def __init__(self, inner: ScriptedLLM, gate: asyncio.Event):
        self._inner = inner
        self._gate = gate
        self.started = asyncio.Event()
        self.context_window = inner.context_window

    async def complete(self, messages: list[dict[str, Any]], tools: Any = None, **kw: Any) -> Any:
        self.started.set()
        await self._gate.wait()
        return await self._inner.complete(messages, tools, **kw)

    def count_tokens(self, messages: list[dict[str, Any]]) -> int:
        return self._inner.count_tokens(messages)


# --- consolidation triggers ------------------------------------------------------------------


def fill(label: str, chars: int) -> Completion:
    return call("core_memory_append", label=label, content="Likes " + "x" * (chars - 6))


async def consolidations(app: App, agent_key: str) -> int:
    return sum(1 for j in await app.stores.jobs.active(agent_key) if j.kind == "consolidate")


async def test_a_block_near_its_limit_plans_one_consolidation_that_runs_later(rig: Rig) -> None:
    rig.llm.extend([fill("human", 2300), fill("human", 2300), reply("Noted!")])
    await rig.adapter.say("bob", "my life story")
    await asyncio.sleep(0)  # the planning runs beside the turn
    await rig.app.router.drain()
    assert await consolidations(rig.app, "fake:bob") == 1  # two edits, one pass

    rig.llm.extend([call("memory_rethink", label="human", new_memory="Likes x."), reply("done")])
    rig.clock.advance(minutes=2)
    assert await rig.app.scheduler.run_due() == 1
    human = await rig.app.stores.blocks.get("fake:bob", "human")
    assert human is not None and human.value == "Likes x."
    assert await consolidations(rig.app, "fake:bob") == 0
    runs = await rig.app.consolidator.runs("fake:bob")
    assert len(runs) == 1


@pytest.mark.settings(consolidation={"every_turns": 3})
async def test_every_n_turns_plans_a_consolidation(rig: Rig) -> None:
    for text in ("one", "two"):
        await rig.adapter.say("carol", text)
    await asyncio.sleep(0)
    assert await consolidations(rig.app, "fake:carol") == 0
    await rig.adapter.say("carol", "three")
    await asyncio.sleep(0.05)
    assert await consolidations(rig.app, "fake:carol") == 1


@pytest.mark.settings(consolidation={"enabled": False})
async def test_disabled_consolidation_plans_nothing(rig: Rig) -> None:
    rig.llm.extend([fill("human", 4800), reply("Noted!")])
    await rig.adapter.say("bob", "my life story")
    await asyncio.sleep(0.05)
    assert await consolidations(rig.app, "fake:bob") == 0


async def test_the_scheduled_pass_plans_agents_active_in_the_last_day(rig: Rig) -> None:
    await rig.adapter.say("old", "hi")
    rig.clock.advance(days=2)
    await rig.adapter.say("new", "hi")
    assert await rig.app.scheduler.plan_consolidations() == 1
    assert await consolidations(rig.app, "fake:new") == 1
    assert await consolidations(rig.app, "fake:old") == 0
    assert await rig.app.scheduler.plan_consolidations() == 0  # already planned
