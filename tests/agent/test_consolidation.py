"""Memory consolidation ("sleep-time") with a scripted model: what it changes, keeps and records."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from botmem.agent.consolidation import Consolidator, lost_lines
from botmem.app import App
from botmem.config import ConsolidationSettings
from botmem.errors import LLMError
from botmem.llm.base import Completion, Usage
from botmem.stores.base import Passage
from botmem.testing import ScriptedLLM, call, calls, reply
from botmem.types import BlockSpec, Message
from tests.helpers import make_settings, open_app

AGENT = "fake:bob"
HUMAN = "Name: Bob\nLikes tea\nname: bob\nTrip to Rome in May 2023\nAllergic to peanuts"
START = datetime(2026, 3, 14, 3, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class Rig:
    app: App
    llm: ScriptedLLM
    clock: Clock

    def consolidator(self, **settings: Any) -> Consolidator:
        return Consolidator(
            self.app.stores,
            self.llm,
            ConsolidationSettings(**settings),
            self.clock,
            self.app.retriever,
            ZoneInfo("Europe/Paris"),
        )

    async def block(self, label: str = "human") -> str:
        block = await self.app.stores.blocks.get(AGENT, label)
        assert block is not None
        return block.value

    async def passages(self) -> list[Passage]:
        return await self.app.stores.archival.select(AGENT, limit=50)

    async def say(self, *texts: str) -> list[Message]:
        said = [Message(AGENT, "user", t, self.clock()) for t in texts]
        return await self.app.stores.history.append(said)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    llm = ScriptedLLM()
    clock = Clock()
    app = await open_app(make_settings(), llm, clock=clock)
    await app.stores.agents.ensure(AGENT)
    await app.stores.blocks.attach(AGENT, BlockSpec("persona", "I am helpful.", read_only=True))
    await app.stores.blocks.attach(AGENT, BlockSpec("human", HUMAN, limit=200))
    await app.stores.blocks.attach(
        AGENT, BlockSpec("team", "We ship on Fridays."), shared_name="org"
    )
    yield Rig(app, llm, clock)
    await app.aclose()


TIDY = "Name: Bob\nLikes tea\nAllergic to peanuts\nLives in Berlin"


async def test_a_pass_merges_duplicates_and_archives_stale_detail(rig: Rig) -> None:
    said = await rig.say("I moved to Berlin last week")
    rig.llm.extend(
        [
            calls(
                ("archival_memory_insert", {"content": "Bob's trip to Rome in May 2023"}),
                ("memory_rethink", {"label": "human", "new_memory": TIDY}),
            ),
            reply("Merged the name, archived the trip, added Berlin."),
        ]
    )
    report = await rig.consolidator().run(AGENT, "scheduled")
    assert await rig.block() == TIDY
    assert [p.text for p in await rig.passages()] == ["Bob's trip to Rome in May 2023"]
    assert (report.steps, report.edits, report.archived, report.rescued) == (2, 1, 1, 0)
    assert report.stopped == "done" and report.tokens > 0
    (edit,) = await rig.app.stores.blocks.edits(AGENT)
    assert edit.edit_key and edit.edit_key.startswith(f"consolidation:{report.run_id}:")
    assert (edit.old_value, edit.new_value) == (HUMAN, TIDY)
    state = await rig.app.stores.agents.get(AGENT)
    assert state is not None and state.metadata["consolidated_through"] == said[-1].id
    assert state.metadata["last_consolidation"].startswith("2026-03-14T03:00")


async def test_the_model_gets_blocks_and_new_messages_with_memory_tools_only(rig: Rig) -> None:
    await rig.say("I moved to Berlin last week")
    rig.llm.extend([reply("nothing to change")])
    await rig.consolidator().run(AGENT, "scheduled")
    (request,) = rig.llm.tool_requests
    names = [t["function"]["name"] for t in request.tools or []]
    assert names == [
        "core_memory_append",
        "core_memory_replace",
        "memory_rethink",
        "archival_memory_insert",
    ]
    assert "never drop a fact" in request.system.lower()
    (prompt,) = [m["content"] for m in request.messages if m["role"] == "user"]
    assert "Allergic to peanuts" in prompt and "I moved to Berlin last week" in prompt
    assert "[2026-03-14T04:00+01:00] user:" in prompt  # in the agent's timezone
    assert "leave as they are: team" in prompt


async def test_the_next_pass_sees_only_newer_messages(rig: Rig) -> None:
    await rig.say("I moved to Berlin last week")
    rig.llm.extend([reply("ok"), reply("ok")])
    await rig.consolidator().run(AGENT, "scheduled")
    await rig.say("My sister is called Ann")
    await rig.consolidator().run(AGENT, "scheduled")
    prompt = rig.llm.tool_requests[-1].messages[1]["content"]
    assert "My sister is called Ann" in prompt and "Berlin" not in prompt


async def test_the_transcript_is_capped_to_the_most_recent_messages(rig: Rig) -> None:
    await rig.say(*[f"message number {i}." for i in range(15)])
    rig.llm.extend([reply("ok")])
    await rig.consolidator(max_messages=10).run(AGENT, "scheduled")
    prompt = rig.llm.tool_requests[-1].messages[1]["content"]
    assert "message number 4." not in prompt and "message number 5." in prompt


async def test_the_transcript_fits_in_half_the_budget(rig: Rig) -> None:
    await rig.say(*[f"message {i}: " + "blah " * 200 for i in range(30)])  # ~1,000 chars each
    rig.llm.extend([reply("ok")])
    await rig.consolidator(max_tokens=4000).run(AGENT, "scheduled")  # 8,000 chars: 7 lines
    prompt = rig.llm.tool_requests[-1].messages[1]["content"]
    assert "message 22:" not in prompt and "message 23:" in prompt and "message 29:" in prompt


async def test_no_fact_is_lost_what_leaves_a_block_lands_in_archival(rig: Rig) -> None:
    dropped = "Name: Bob\nLikes tea\nLives in Berlin"  # the trip and the allergy are gone
    rig.llm.extend(
        [
            calls(
                ("archival_memory_insert", {"content": "Trip to Rome in May 2023"}),
                ("memory_rethink", {"label": "human", "new_memory": dropped}),
            ),
            reply("done"),
        ]
    )
    report = await rig.consolidator().run(AGENT, "block 'human' over its limit")
    assert report.rescued == 1 and report.archived == 1
    rescued = [p for p in await rig.passages() if "consolidation" in p.tags]
    assert len(rescued) == 1 and rescued[0].tags == ("consolidation", "human")
    assert "Allergic to peanuts" in rescued[0].text
    # every line that was in the block is now in a block or in archival memory
    kept = [await rig.block(), *(p.text for p in await rig.passages())]
    assert lost_lines(HUMAN, kept) == []


def test_lost_lines_compares_loosely() -> None:
    before = "- Likes tea\n\nName:  Bob\nHas a cat\nHas a cat"
    assert lost_lines(before, ["name: bob, likes TEA"]) == ["Has a cat"]


async def test_a_pass_without_tool_calls_changes_nothing(rig: Rig) -> None:
    rig.llm.extend([reply("nothing to change")])
    consolidator = rig.consolidator()
    report = await consolidator.run(AGENT, "scheduled")
    assert (report.steps, report.edits, report.archived, report.rescued) == (1, 0, 0, 0)
    assert report.stopped == "done"
    assert await rig.block() == HUMAN and await rig.passages() == []
    assert await consolidator.runs(AGENT) == []


def _appends(messages: list[dict[str, Any]]) -> Completion:
    return call("core_memory_append", label="human", content=f"note {len(messages)}")


async def test_max_steps_stops_a_model_that_never_finishes(rig: Rig) -> None:
    rig.llm.responder = _appends
    report = await rig.consolidator(max_steps=3).run(AGENT, "scheduled")
    assert report.stopped == "max_steps" and report.steps == 3
    assert len(rig.llm.tool_requests) == 3 and report.edits == 3


async def test_the_token_budget_stops_a_pass(rig: Rig) -> None:
    rig.llm.responder = _appends
    await rig.say(*["a long message about many things " * 20] * 10)  # ~2,200 tokens per step
    report = await rig.consolidator(max_tokens=4000).run(AGENT, "scheduled")
    assert report.stopped == "budget" and report.steps == 2 and report.tokens >= 4000
    assert len(rig.llm.tool_requests) == 2 and report.edits == 2


async def test_tokens_are_counted_when_the_model_reports_no_usage(rig: Rig) -> None:
    class NoUsage(ScriptedLLM):
        async def complete(self, *args: Any, **kwargs: Any) -> Completion:
            return replace(await super().complete(*args, **kwargs), usage=Usage())

    llm = NoUsage([reply("ok")])
    rig.llm = llm
    report = await rig.consolidator().run(AGENT, "scheduled")
    assert report.tokens == llm.count_tokens(llm.requests[0].messages) + 3 + 1


async def test_tool_errors_go_back_to_the_model(rig: Rig) -> None:
    rig.llm.extend(
        [
            calls(
                ("send_message", {"message": "hi"}),
                ("memory_rethink", {"label": "persona", "new_memory": "x"}),
                ("memory_rethink", {"label": "team", "new_memory": "We never ship."}),
            ),
            reply("done"),
        ]
    )
    report = await rig.consolidator().run(AGENT, "scheduled")
    results = [m["content"] for m in rig.llm.tool_requests[-1].messages if m["role"] == "tool"]
    assert "no tool named 'send_message'" in results[0]
    assert "read-only" in results[1]
    assert "shared with other agents" in results[2]
    assert all(r.startswith("Error: ") for r in results)
    assert await rig.block("team") == "We ship on Fridays."
    assert await rig.block("persona") == "I am helpful." and report.edits == 0


async def test_the_pass_is_not_part_of_the_conversation(rig: Rig) -> None:
    await rig.say("hello")
    rig.llm.extend([call("core_memory_append", label="human", content="Says hello"), reply("ok")])
    await rig.consolidator().run(AGENT, "scheduled")
    history = await rig.app.stores.history.since(AGENT, 0)
    assert [m.content for m in history] == ["hello"]


async def test_a_failing_model_stops_the_pass_and_its_messages_are_seen_again(rig: Rig) -> None:
    await rig.say("I moved to Berlin")
    rig.llm.extend([LLMError("down")])
    report = await rig.consolidator().run(AGENT, "scheduled")
    assert report.stopped == "error" and report.steps == 0
    state = await rig.app.stores.agents.get(AGENT)
    assert state is not None and "consolidated_through" not in state.metadata


async def test_runs_list_passes_and_undo_restores_the_blocks_once(rig: Rig) -> None:
    consolidator = rig.consolidator()
    rig.llm.extend(
        [
            call("memory_rethink", label="human", new_memory=HUMAN + "\nLives in Berlin"),
            call("core_memory_replace", label="human", old_content="name: bob\n", new_content=""),
            reply("done"),
        ]
    )
    report = await consolidator.run(AGENT, "scheduled")
    tidy = await rig.block()
    assert "name: bob" not in tidy and "Lives in Berlin" in tidy
    (run,) = await consolidator.runs(AGENT)
    assert run.run_id == report.run_id and run.changes == {"human": (HUMAN, tidy)}
    assert run.at.tzinfo is not None and not run.undone

    assert await consolidator.undo(AGENT, report.run_id) == ["human"]
    assert await rig.block() == HUMAN
    (run,) = await consolidator.runs(AGENT)
    assert run.undone
    await rig.app.stores.blocks.edit(AGENT, "human", lambda b: b.value + "\nLater fact")
    assert await consolidator.undo(AGENT, report.run_id) == []  # undone already
    assert await rig.block() == HUMAN + "\nLater fact"
    assert await consolidator.undo(AGENT, "no-such-run") == []


async def test_a_pass_logs_one_line(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.llm.extend([call("core_memory_append", label="human", content="Has a cat"), reply("ok")])
    with caplog.at_level(logging.INFO, logger="botmem.agent.consolidation"):
        await rig.consolidator().run(AGENT, "12 turns")
    assert (
        "agent fake:bob: consolidated (12 turns): 1 edits, 0 archived, 0 rescued, 2 steps"
        in caplog.text
    )


async def test_an_agent_with_nothing_editable_costs_no_model_call(rig: Rig) -> None:
    other = "fake:ro"
    await rig.app.stores.agents.ensure(other)
    await rig.app.stores.blocks.attach(other, BlockSpec("persona", "x", read_only=True))
    report = await rig.consolidator().run(other, "scheduled")
    assert report.steps == 0 and report.stopped == "done" and rig.llm.requests == []
