"""LLM faults end to end: a real App and the real LiteLLMClient against FakeOpenAIServer.

Each test provokes one fault (5xx, timeout, 429, a dead primary model, bad tool calls, a
tool-call loop), checks what the person gets and how many requests the server saw, then
checks that the agent keeps working and that nothing was left half-done: every inbox row
delivered, every assistant tool call answered by its tool result (in the store and in what
the model was sent), blocks holding exactly the edits that were made.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from botmem.agent.loop import LLM_DOWN_REPLY, STUCK_REPLY
from botmem.app import App, utc_now
from botmem.config import Settings
from botmem.stores.memory_vectors import MemoryVectorIndex
from botmem.stores.sql import open_sql_stores
from botmem.testing import FakeAdapter
from botmem.testing.embeddings import HashEmbedder
from botmem.testing.openai_server import (
    FakeOpenAIServer,
    Reply,
    delayed,
    error,
    text,
    tool_call,
    tool_calls,
)

USER = "alice"
AGENT = f"fake:{USER}"
BOUND = 30.0
"""Seconds: every fault must be resolved (answer or apology) well within this."""
HUMAN = "Nothing known yet."


class GarblingServer(FakeOpenAIServer):
    """FakeOpenAIServer that can answer the next chat requests with a 200 and a garbled body
    (what a misbehaving proxy or a crashed inference server sends)."""

    def __init__(self) -> None:
        super().__init__()
        self.garbled: list[Any] = []

    def _chat(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, Mapping[str, str], float]:
        answer = super()._chat(headers, body)
        if self.garbled:
            return 200, self.garbled.pop(0), {}, 0.0
        return answer


@dataclass
class Rig:
    app: App
    chat: FakeAdapter
    server: GarblingServer

    async def say(self, message: str) -> tuple[str | None, float]:
        """The reply to `message` and how long the turn took (seconds)."""
        started = time.monotonic()
        answer = await self.chat.say(USER, message)
        return answer, time.monotonic() - started

    async def human(self) -> str:
        block = await self.app.stores.blocks.get(AGENT, "human")
        assert block is not None
        return block.value

    async def assert_intact(self) -> None:
        """Nothing half-done: inbox rows delivered, tool calls answered, prompts well formed."""
        stores = self.app.stores
        assert await stores.inbox.unfinished() == []
        for sent in self.chat.sent:
            assert sent.inbox_id is not None
            item = await stores.inbox.get(sent.inbox_id)
            assert item is not None and item.status == "delivered", item
            assert item.reply == sent.text
        history = await stores.history.since(AGENT, 0)
        assert_calls_answered([m.to_openai() for m in history])
        turns = {m.turn_id for m in history}
        assert turns == {s.inbox_id for s in self.chat.sent}  # every turn answered
        assert len(self.chat.sent) == len(turns)  # once
        for turn_id in turns:
            last = [m for m in history if m.turn_id == turn_id][-1]
            assert last.role == "assistant" or last.name == "send_message", last
        for request in self.server.requests:
            assert_calls_answered(request["messages"])


def assert_calls_answered(messages: list[dict[str, Any]]) -> None:
    """Every assistant tool call is followed, before the next non-tool message, by its result."""
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or not message.get("tool_calls"):
            continue
        results = []
        for following in messages[index + 1 :]:
            if following["role"] != "tool":
                break
            results.append(following["tool_call_id"])
        assert results == [c["id"] for c in message["tool_calls"]], (message, results)


def settings_for(tmp_path: Path, base_url: str, **llm: Any) -> Settings:
    options: dict[str, Any] = {
        "model": "openai/test-model",
        "api_base": base_url,
        "context_window": 16000,
        "timeout": 1.0,
        "max_retries": 2,
        "max_steps": 5,
    }
    options.update(llm)
    return Settings.model_validate(
        {
            "llm": options,
            "storage": {"data_dir": str(tmp_path / "data")},
            "agent": {"human": HUMAN},
        }
    )


@pytest.fixture
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    """An App on SQLite on disk whose [llm] points at a fake server (`settings(llm={...})`
    marks a test with more [llm] settings)."""
    marker = request.node.get_closest_marker("settings")
    async with GarblingServer() as server:
        llm = marker.kwargs["llm"] if marker else {}
        settings = settings_for(tmp_path, server.base_url, **llm)
        (tmp_path / "data").mkdir()
        stores = await open_sql_stores(
            f"sqlite:///{tmp_path / 'data' / 'botmem.db'}", utc_now, MemoryVectorIndex()
        )
        app = await App.open(settings, stores=stores, embedder=HashEmbedder())
        chat = FakeAdapter()
        await app.start([chat])
        yield Rig(app, chat, server)
        await app.stop()
        await app.aclose()


def models(server: FakeOpenAIServer) -> list[str]:
    return [r["model"] for r in server.requests]


async def assert_recovers(rig: Rig) -> None:
    """The fault is over: the next message gets a normal answer from the primary model."""
    rig.server.responder = lambda body: text("back to normal")
    before = len(rig.server.requests)
    answer, took = await rig.say("are you there?")
    assert answer == "back to normal"
    assert models(rig.server)[before:] == ["test-model"]
    assert took < BOUND
    await rig.assert_intact()


# --- transport faults ------------------------------------------------------------------


async def test_server_errors_then_success_give_the_real_answer(rig: Rig) -> None:
    rig.server.queue(error(500), error(503, "overloaded"), text("The real answer."))
    answer, took = await rig.say("hello")
    assert answer == "The real answer."
    assert models(rig.server) == ["test-model"] * 3  # two retries on the primary
    assert took < BOUND
    await rig.assert_intact()
    await assert_recovers(rig)


@pytest.mark.settings(llm=dict(timeout=0.5))
async def test_a_timeout_is_retried(rig: Rig) -> None:
    rig.server.queue(delayed(text("too late"), 5.0), text("In time."))
    answer, took = await rig.say("hello")
    assert answer == "In time."
    assert len(rig.server.requests) == 2
    assert took < 5.0  # it did not wait for the slow answer
    await rig.assert_intact()
    await assert_recovers(rig)


@pytest.mark.settings(llm=dict(timeout=0.5, max_retries=1))
async def test_a_model_that_always_times_out_gets_an_apology(rig: Rig) -> None:
    rig.server.responder = lambda body: delayed(text("too late"), 5.0)
    answer, took = await rig.say("hello")
    assert answer == LLM_DOWN_REPLY
    assert len(rig.server.requests) == 2  # one try and one retry, then the apology
    assert took < BOUND
    await rig.assert_intact()
    await assert_recovers(rig)


async def test_a_rate_limit_is_waited_out_as_the_server_asks(rig: Rig) -> None:
    arrivals: list[float] = []
    replies = iter([error(429, "slow down", headers={"retry-after": "2"}), text("Answered.")])

    def responder(body: dict[str, Any]) -> Reply:
        arrivals.append(time.monotonic())
        return next(replies)

    rig.server.responder = responder
    answer, took = await rig.say("hello")
    assert answer == "Answered."
    assert len(arrivals) == 2
    # Our own backoff is at most 0.75 s on a first retry: a longer gap is the server's 2 s.
    assert arrivals[1] - arrivals[0] >= 1.9
    assert took < BOUND
    await rig.assert_intact()
    await assert_recovers(rig)


async def test_a_garbled_success_response_is_retried(rig: Rig) -> None:
    rig.server.garbled = ["<html>502 Bad Gateway</html>", {"choices": []}]
    rig.server.responder = lambda body: text("Clean answer.")
    answer, took = await rig.say("hello")
    assert answer == "Clean answer."
    assert len(rig.server.requests) == 3
    assert took < BOUND
    await rig.assert_intact()
    await assert_recovers(rig)


@pytest.mark.settings(llm=dict(fallbacks=["openai/backup-model"]))
async def test_a_dead_primary_model_falls_back(rig: Rig) -> None:
    def responder(body: dict[str, Any]) -> Reply:
        if body["model"] == "backup-model":
            return text("From the backup.")
        return error(500, "primary is down")

    rig.server.responder = responder
    answer, took = await rig.say("hello")
    assert answer == "From the backup."
    assert models(rig.server) == ["test-model"] * 3 + ["backup-model"]
    assert took < BOUND
    await rig.assert_intact()
    await assert_recovers(rig)


@pytest.mark.settings(llm=dict(fallbacks=["openai/backup-model"], max_retries=1))
async def test_every_model_down_mid_turn_gives_an_apology_and_keeps_the_edit(rig: Rig) -> None:
    rig.server.queue(tool_call("core_memory_append", {"label": "human", "content": "Likes tea."}))
    rig.server.responder = lambda body: error(502, "bad gateway")
    answer, took = await rig.say("I like tea")
    assert answer == LLM_DOWN_REPLY
    assert models(rig.server) == ["test-model"] * 3 + ["backup-model"]
    assert await rig.human() == f"{HUMAN}\nLikes tea."  # applied once, kept
    assert took < BOUND
    await rig.assert_intact()
    await assert_recovers(rig)
    assert "Likes tea." in rig.server.requests[-1]["messages"][0]["content"]


# --- bad tool calls --------------------------------------------------------------------


async def test_truncated_tool_arguments_go_back_to_the_model(rig: Rig) -> None:
    rig.server.queue(
        tool_call("core_memory_append", '{"label": "human", "content": "Likes t'),
        tool_call("core_memory_append", {"label": "human", "content": "Likes tea."}),
        text("Noted: tea."),
    )
    answer, took = await rig.say("I like tea")
    assert answer == "Noted: tea."
    assert len(rig.server.requests) == 3
    error_result = rig.server.requests[1]["messages"][-1]
    assert error_result["role"] == "tool"
    assert error_result["content"].startswith("Error")
    assert "json" in error_result["content"].lower()
    assert rig.server.requests[2]["messages"][-1]["role"] == "tool"
    assert not rig.server.requests[2]["messages"][-1]["content"].startswith("Error")
    assert await rig.human() == f"{HUMAN}\nLikes tea."  # the broken call changed nothing
    assert took < BOUND
    await rig.assert_intact()
    await assert_recovers(rig)


async def test_an_unknown_tool_goes_back_to_the_model(rig: Rig) -> None:
    rig.server.queue(
        tool_call("delete_all_memories", {"really": True}),
        text("I can't do that, but I'm here."),
    )
    answer, took = await rig.say("forget everything")
    assert answer == "I can't do that, but I'm here."
    result = rig.server.requests[1]["messages"][-1]
    assert result["role"] == "tool"
    assert "delete_all_memories" in result["content"] and "core_memory_append" in result["content"]
    assert result["content"].startswith("Error")
    assert await rig.human() == HUMAN
    assert took < BOUND
    await rig.assert_intact()
    await assert_recovers(rig)


async def test_non_object_arguments_and_an_empty_tool_name_go_back_to_the_model(
    rig: Rig,
) -> None:
    rig.server.queue(
        tool_call("core_memory_append", '["human", "Likes tea."]'),
        tool_call("", {"label": "human"}),
        text("Sorted."),
    )
    answer, _ = await rig.say("I like tea")
    assert answer == "Sorted."
    results = [r["messages"][-1] for r in rig.server.requests[1:]]
    assert [r["role"] for r in results] == ["tool", "tool"]
    assert all(r["content"].startswith("Error") for r in results), results
    assert await rig.human() == HUMAN
    await rig.assert_intact()
    await assert_recovers(rig)


def append_as_call_0(content: str) -> Reply:
    return tool_call("core_memory_append", {"label": "human", "content": content}, id="call_0")


async def test_tool_call_ids_reused_every_step_still_apply_each_edit_once(rig: Rig) -> None:
    """Some local servers number calls per message ("call_0" every time)."""
    rig.server.queue(
        append_as_call_0("Likes tea."), append_as_call_0("Hates coffee."), text("Noted both.")
    )
    answer, _ = await rig.say("I like tea and hate coffee")
    assert answer == "Noted both."
    assert await rig.human() == f"{HUMAN}\nLikes tea.\nHates coffee."
    rig.server.queue(
        append_as_call_0("Has a cat."),
        text("A cat!"),
    )
    assert (await rig.say("I have a cat"))[0] == "A cat!"
    assert await rig.human() == f"{HUMAN}\nLikes tea.\nHates coffee.\nHas a cat."
    await rig.assert_intact()


# --- runaway loops ---------------------------------------------------------------------


async def test_the_same_tool_call_forever_is_stopped_by_the_breaker(rig: Rig) -> None:
    rig.server.responder = lambda body: tool_call("conversation_search", {"query": "tea"})
    answer, took = await rig.say("what do I like?")
    assert answer == STUCK_REPLY
    repeated = rig.app.settings.agent.max_repeated_calls
    assert len(rig.server.requests) == repeated < rig.app.settings.llm.max_steps
    assert took < BOUND
    await rig.assert_intact()
    await assert_recovers(rig)


@pytest.mark.settings(llm=dict(max_steps=4))
async def test_different_tool_calls_forever_stop_at_max_steps(rig: Rig) -> None:
    counter = itertools.count(1)

    def responder(body: dict[str, Any]) -> Reply:
        fact = f"Fact {next(counter)}."
        return tool_call("core_memory_append", {"label": "human", "content": fact})

    rig.server.responder = responder
    answer, took = await rig.say("tell me everything")
    assert answer == STUCK_REPLY
    assert len(rig.server.requests) == 4
    # Every call that was made was applied exactly once, none half-way.
    assert await rig.human() == "\n".join([HUMAN, "Fact 1.", "Fact 2.", "Fact 3.", "Fact 4."])
    edits = await rig.app.stores.blocks.edits(AGENT, "human")
    assert len(edits) == 4
    assert took < BOUND
    await rig.assert_intact()
    await assert_recovers(rig)


@pytest.mark.settings(llm=dict(max_steps=3))
async def test_empty_completions_forever_stop_at_max_steps(rig: Rig) -> None:
    rig.server.responder = lambda body: text("")
    answer, took = await rig.say("hello?")
    assert answer == STUCK_REPLY
    assert len(rig.server.requests) == 3
    assert took < BOUND
    await rig.assert_intact()
    await assert_recovers(rig)


async def test_a_bad_call_next_to_send_message_still_sends_the_message(rig: Rig) -> None:
    rig.server.queue(
        tool_calls(
            tool_call("core_memory_append", '{"label": "human", "content": '),
            tool_call("send_message", {"message": "Hi there."}),
        )
    )
    answer, _ = await rig.say("hi")
    assert answer == "Hi there."
    assert len(rig.server.requests) == 1
    history = await rig.app.stores.history.since(AGENT, 0)
    results = [m.content or "" for m in history if m.role == "tool"]
    assert len(results) == 2 and results[0].startswith("Error")
    assert await rig.human() == HUMAN
    await rig.assert_intact()
    await assert_recovers(rig)


async def test_send_message_with_an_empty_message_is_corrected(rig: Rig) -> None:
    rig.server.queue(
        tool_call("send_message", {"message": "  "}),
        tool_call("send_message", {"message": "Hello Alice!"}),
    )
    answer, _ = await rig.say("hi")
    assert answer == "Hello Alice!"
    assert rig.server.requests[1]["messages"][-1]["content"].startswith("Error")
    await rig.assert_intact()
    await assert_recovers(rig)


async def test_faults_in_a_row_leave_one_consistent_conversation(rig: Rig) -> None:
    """Several faults in one conversation: each turn is answered and the history stays valid."""
    rig.server.queue(
        error(500),
        tool_call("core_memory_append", '{"label": '),
        tool_call("core_memory_append", {"label": "human", "content": "Name: Alice."}),
        text("Hi Alice."),
    )
    assert (await rig.say("I'm Alice"))[0] == "Hi Alice."
    rig.server.queue(tool_call("nope", {}), error(500), error(500), error(500))
    assert (await rig.say("what's my name?"))[0] == LLM_DOWN_REPLY
    rig.server.queue(text("You are Alice."))
    assert (await rig.say("what's my name?"))[0] == "You are Alice."
    assert "Name: Alice." in rig.server.requests[-1]["messages"][0]["content"]
    assert await rig.human() == f"{HUMAN}\nName: Alice."
    await rig.assert_intact()
    sent = json.dumps(rig.server.requests[-1]["messages"])
    assert "I'm Alice" in sent and "nope" in sent  # history carried, failed calls included
