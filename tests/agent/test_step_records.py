"""Every LLM step of a turn logs its prompt size (stores.steps), marked where the context was
folded into the summary: what the admin pages chart."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botmem.agent.loop import LLM_DOWN_REPLY
from botmem.app import App
from botmem.errors import LLMError
from botmem.llm.base import Completion, Usage
from botmem.testing import FakeAdapter, ScriptedLLM, call, reply
from botmem.testing.embeddings import HashEmbedder
from botmem.types import Message
from tests.agent.conftest import Bot
from tests.helpers import make_settings, open_app

NOW = datetime(2026, 5, 1, tzinfo=UTC)


async def _last_turn_id(bot: Bot | App, agent_key: str) -> int:
    last = (await bot.stores.history.since(agent_key, 0))[-1]
    assert last.turn_id is not None
    return last.turn_id


async def test_a_tool_call_then_a_reply_records_two_steps_as_reported(bot: Bot) -> None:
    bot.llm.extend([call("core_memory_append", label="human", content="Name: Bob"), reply("Hi")])
    assert await bot.chat.say("bob", "I'm Bob") == "Hi"
    steps = await bot.stores.steps.for_agent("fake:bob")
    reported = [bot.llm.count_tokens(r.messages) for r in bot.llm.tool_requests]  # its usage
    assert [s.prompt_tokens for s in steps] == reported
    assert reported[1] > reported[0]  # the heartbeat's prompt holds the call and its result
    assert [s.completion_tokens for s in steps] == [1, 1]
    assert [s.summarized for s in steps] == [False, False]
    assert {s.turn_id for s in steps} == {await _last_turn_id(bot, "fake:bob")}


@dataclass
class UnmeteredLLM(ScriptedLLM):
    """A model that reports no usage (some local servers do not)."""

    async def complete(
        self, messages: list[dict[str, Any]], tools: Any = None, *, max_tokens: int | None = None
    ) -> Completion:
        completion = await super().complete(messages, tools, max_tokens=max_tokens)
        return replace(completion, usage=Usage())


async def test_without_reported_usage_the_step_records_botmems_count() -> None:
    llm = UnmeteredLLM([reply("Hello")])
    app = await open_app(make_settings(), llm)
    try:
        chat = FakeAdapter()
        await app.start([chat])
        await chat.say("ann", "hi")
        (step,) = await app.stores.steps.for_agent("fake:ann")
        (request,) = llm.tool_requests
        tools = llm.count_tokens([{"role": "system", "content": json.dumps(request.tools)}])
        assert step.prompt_tokens == llm.count_tokens(request.messages) + tools
        assert step.completion_tokens == 0
    finally:
        await app.aclose()


async def _app_over_budget(llm: ScriptedLLM) -> tuple[App, FakeAdapter]:
    """An agent with one turn done, then enough history to exceed the trigger."""
    settings = make_settings(context={"trigger": 0.75, "target": 0.5})
    app = await open_app(settings, llm)
    chat = FakeAdapter()
    await app.start([chat])
    llm.extend([reply("ok")])
    await chat.say("max", "hi")
    turn = await _last_turn_id(app, "fake:max")
    filler = [
        Message("fake:max", role, "blah " * 40, NOW, turn_id=turn, tokens=100)
        for role in ["user", "assistant"] * 6
    ]
    await app.stores.history.append(filler)  # 1200 tokens: over 75% of 1500
    return app, chat


async def test_the_first_step_after_a_fold_is_marked_summarized() -> None:
    llm = ScriptedLLM(context_window=1500)
    app, chat = await _app_over_budget(llm)
    try:
        llm.extend([call("core_memory_append", label="human", content="x"), reply("done")])
        assert await chat.say("max", "still there?") == "done"
        state = await app.stores.agents.get("fake:max")
        assert state is not None and state.summary  # it was folded
        steps = await app.stores.steps.for_agent("fake:max")
        assert [s.summarized for s in steps] == [False, True, False]
        assert steps[1].prompt_tokens < 0.75 * 1500  # the folded prompt, not the one before
        assert steps[1].turn_id == steps[2].turn_id != steps[0].turn_id
    finally:
        await app.aclose()


async def test_a_fold_whose_step_failed_marks_the_next_step() -> None:
    llm = ScriptedLLM(context_window=1500)
    app, chat = await _app_over_budget(llm)
    try:
        llm.extend([LLMError("model down")])
        assert await chat.say("max", "still there?") == LLM_DOWN_REPLY
        state = await app.stores.agents.get("fake:max")
        assert state is not None and state.summary  # folded, then the model failed
        assert len(await app.stores.steps.for_agent("fake:max")) == 1
        llm.extend([reply("back")])
        assert await chat.say("max", "now?") == "back"
        steps = await app.stores.steps.for_agent("fake:max")
        assert [s.summarized for s in steps] == [False, True]  # the failed call logs nothing
    finally:
        await app.aclose()


class Crash(BaseException):
    """Stands in for the process dying: not caught by any boundary."""


async def test_a_crash_before_the_steps_message_is_stored_gives_a_second_point(
    tmp_path: Path,
) -> None:
    """The step is logged when the model answers, before its message is stored: the resumed
    turn calls the model again and logs that call too (two points for one step)."""
    settings = make_settings(storage={"data_dir": str(tmp_path / "data")})
    llm = ScriptedLLM([reply("lost")])
    app = await App.open(settings, llm=llm, embedder=HashEmbedder())
    chat = FakeAdapter()
    await app.start([chat])
    real_append = app.stores.history.append

    async def crash_on_reply(messages: Any) -> Any:
        if messages[0].role == "assistant":
            raise Crash()
        return await real_append(messages)

    app.stores.history.append = crash_on_reply  # type: ignore[method-assign]
    task = await app.handle(chat.inbound("zoe", "hi", message_id="m1"))
    assert task is not None
    with contextlib.suppress(Crash):
        await task
    await app.stores.aclose()

    app2 = await App.open(settings, llm=ScriptedLLM([reply("Hi Zoe")]), embedder=HashEmbedder())
    try:
        chat2 = FakeAdapter()
        await app2.start([chat2])
        await app2.router.drain()
        assert [m.text for m in chat2.sent] == ["Hi Zoe"]
        steps = await app2.stores.steps.for_agent("fake:zoe")
        assert len(steps) == 2 and steps[0].turn_id == steps[1].turn_id
    finally:
        await app2.aclose()
