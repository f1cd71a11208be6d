"""Context compilation and recursive summarization, including the exact trigger boundary."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from botmem.agent.context import ContextBuilder, eviction_count, history_for_model
from botmem.agent.summarizer import Summarizer
from botmem.app import App
from botmem.config import ContextSettings
from botmem.stores.memory import memory_stores
from botmem.testing import FakeAdapter, ScriptedLLM, call, reply
from botmem.testing.embeddings import HashEmbedder
from botmem.types import Message, ToolCall
from tests.agent.conftest import Bot
from tests.helpers import make_settings

NOW = datetime(2026, 5, 1, tzinfo=UTC)
SETTINGS = ContextSettings(trigger=0.75, target=0.5)


def _msgs(*spec: tuple[str, int]) -> list[Message]:
    return [
        Message("a:1", role, "x", NOW, id=i + 1, tokens=tokens)  # type: ignore[arg-type]
        for i, (role, tokens) in enumerate(spec)
    ]


def test_no_eviction_at_exactly_the_trigger() -> None:
    messages = _msgs(*[("user", 100)] * 6, ("user", 50))
    assert eviction_count(messages, 100, 1000, SETTINGS, keep_from=6) == 0  # 750 == 75%


def test_one_token_over_the_trigger_evicts_down_to_the_target() -> None:
    messages = _msgs(*[("user", 100)] * 6, ("user", 51))  # 751 > 750
    count = eviction_count(messages, 100, 1000, SETTINGS, keep_from=6)
    assert count == 3  # 751 - 300 = 451 <= 500, while 751 - 200 = 551 is not
    rest = 100 + sum(m.tokens for m in messages[count:])
    assert rest <= 500


def test_eviction_never_separates_a_tool_result_from_its_call() -> None:
    messages = _msgs(
        ("user", 200),
        ("assistant", 100),
        ("tool", 100),
        ("tool", 100),
        ("assistant", 100),
        ("user", 100),
    )
    assert eviction_count(messages, 100, 1000, SETTINGS, keep_from=5) == 4
    assert messages[4].role == "assistant"


def test_the_current_turn_is_never_evicted() -> None:
    messages = _msgs(("user", 100), ("assistant", 100), ("user", 900))
    assert eviction_count(messages, 100, 1000, SETTINGS, keep_from=2) == 2


def test_unanswered_tool_calls_get_a_stand_in_result() -> None:
    call_msg = Message(
        "a:1",
        "assistant",
        None,
        NOW,
        id=1,
        tool_calls=(ToolCall("c1", "conversation_search", "{}"),),
    )
    orphan = Message("a:1", "tool", "late", NOW, id=3, tool_call_id="zz", name="x")
    out = history_for_model([call_msg, Message("a:1", "user", "hi", NOW, id=2), orphan])
    assert [m["role"] for m in out] == ["assistant", "tool", "user"]
    assert out[1]["tool_call_id"] == "c1" and "interrupted" in out[1]["content"]


async def _builder_with_history(window: int) -> tuple[ContextBuilder, ScriptedLLM, int]:
    stores = memory_stores()
    await stores.agents.ensure("a:1")
    llm = ScriptedLLM(context_window=window)
    history = [
        Message(
            "a:1",
            "user" if i % 2 == 0 else "assistant",
            f"message number {i} " * 5,
            NOW,
            turn_id=i // 2 + 1,
            tokens=0,
        )
        for i in range(20)
    ]
    history = [
        Message(
            m.agent_key,
            m.role,
            m.content,
            m.created_at,
            turn_id=m.turn_id,
            tokens=llm.count_tokens([m.to_openai()]),
        )
        for m in history
    ]
    await stores.history.append(history)
    settings = ContextSettings(trigger=0.5, target=0.25)
    builder = ContextBuilder(
        stores, llm, Summarizer(llm), settings, "Be nice.", [], ZoneInfo("UTC")
    )
    return builder, llm, 10


async def test_prompt_exactly_at_the_trigger_is_not_summarized() -> None:
    builder, llm, turn = await _builder_with_history(10_000)
    tokens = (await builder.build("a:1", turn, NOW)).tokens
    builder, llm, turn = await _builder_with_history(2 * tokens)  # tokens == 50% of window
    prompt = await builder.build("a:1", turn, NOW)
    assert prompt.summarized == 0 and prompt.tokens == tokens
    assert llm.requests == []


async def test_prompt_one_token_over_is_summarized_below_the_target() -> None:
    builder, llm, turn = await _builder_with_history(10_000)
    tokens = (await builder.build("a:1", turn, NOW)).tokens
    builder, llm, turn = await _builder_with_history(2 * tokens - 1)
    prompt = await builder.build("a:1", turn, NOW)
    assert prompt.summarized > 0
    assert len(llm.requests) == 1 and llm.requests[0].tools is None  # one summary call
    assert "Summary of earlier conversation" in prompt.messages[0]["content"]
    assert prompt.tokens <= 0.25 * (2 * tokens - 1) + 60  # target plus the new summary text
    tools_tokens = llm.count_tokens([{"role": "system", "content": "[]"}])
    assert llm.count_tokens(prompt.messages) + tools_tokens == prompt.tokens


async def test_long_conversation_stays_in_budget_and_evicted_messages_stay_searchable() -> None:
    settings = make_settings(
        context={"trigger": 0.75, "target": 0.5}, limits={"messages_per_minute": 0}
    )
    llm = ScriptedLLM(context_window=1500, responder=lambda _m: reply("ok " * 20))
    async with await App.open(
        settings, llm=llm, stores=memory_stores(), embedder=HashEmbedder()
    ) as app:
        chat = FakeAdapter()
        await app.start([chat])
        await chat.say("max", "my cat is called Pixel")
        for i in range(40):
            await chat.say("max", f"filler message {i} " + "blah " * 30)
        llm.extend([call("conversation_search", query="Pixel"), reply("Your cat is Pixel")])
        assert await chat.say("max", "what is my cat called?") == "Your cat is Pixel"
        state = await app.stores.agents.get("fake:max")
        assert state is not None and state.summary and state.context_start_id > 1
        assert all(llm.count_tokens(r.messages) <= 0.75 * 1500 for r in llm.tool_requests)
        assert "my cat is called Pixel" in llm.tool_requests[-1].messages[-1]["content"]
        assert sum(1 for r in llm.requests if r.tools is None) >= 2  # recursive: many summaries
        summary_inputs = [r.messages[1]["content"] for r in llm.requests if r.tools is None]
        assert "Summary of" in summary_inputs[-1]  # the previous summary is folded in


async def test_the_prompt_shows_the_time_in_the_persons_timezone(bot: Bot) -> None:
    bot.llm.extend([reply("Hi."), reply("Hi again.")])
    await bot.chat.say("ann", "hello")
    assert (
        "Current time: " in bot.llm.requests[-1].system and "(UTC)" in bot.llm.requests[-1].system
    )
    await bot.stores.agents.set_metadata("fake:ann", {"timezone": "Asia/Tokyo"})
    await bot.chat.say("ann", "and now?")
    assert "+09:00 (Asia/Tokyo)" in bot.llm.requests[-1].system
