"""The step loop through the whole app: tools, heartbeats, errors, limits."""

from __future__ import annotations

import json

from botmem.agent.loop import LLM_DOWN_REPLY, STUCK_REPLY
from botmem.errors import LLMError
from botmem.testing import call, calls, raw_call, reply
from tests.agent.conftest import Bot


async def test_agent_remembers_a_name_in_core_memory(bot: Bot) -> None:
    bot.llm.extend(
        [
            call("core_memory_append", label="human", content="Name: Bob"),
            reply("Nice to meet you, Bob!"),
        ]
    )
    assert await bot.chat.say("bob", "Hi, I'm Bob") == "Nice to meet you, Bob!"
    assert (await bot.block("bob", "human")).endswith("\nName: Bob")
    first, second = bot.llm.tool_requests
    assert "Name: Bob" not in first.system
    assert "Name: Bob" in second.system  # the heartbeat: the model sees its edit
    assert second.messages[-1]["role"] == "tool"
    assert "updated" in second.messages[-1]["content"]


async def test_send_message_is_the_reply_and_ends_the_turn(bot: Bot) -> None:
    bot.llm.extend([call("send_message", message="Hello there")])
    assert await bot.chat.say("ann", "hi") == "Hello there"
    assert len(bot.llm.tool_requests) == 1
    history = await bot.stores.history.since("fake:ann", 0)
    assert [m.role for m in history] == ["user", "assistant", "tool"]


async def test_tool_mistakes_go_back_to_the_model_and_the_turn_goes_on(bot: Bot) -> None:
    bot.llm.extend(
        [
            call("core_memory_replace", label="human", old_content="nope", new_content="x"),
            call("core_memory_append", label="nothere", content="x"),
            raw_call("core_memory_append", '{"label": "human", '),
            call("no_such_tool"),
            call("core_memory_append", label="human"),
            call("core_memory_append", label="human", content="x" * 11_000),
            reply("done"),
        ]
    )
    settings_steps = bot.app.settings.llm.max_steps
    assert settings_steps >= 7
    assert await bot.chat.say("cy", "hello") == "done"
    results = [r.messages[-1]["content"] for r in bot.llm.tool_requests[1:]]
    assert "was not found in block 'human'" in results[0]
    assert "no block labelled 'nothere'" in results[1] and "persona, human" in results[1]
    assert "not valid JSON" in results[2]
    assert "no tool named 'no_such_tool'" in results[3]
    assert "missing required argument(s): content" in results[4]
    assert "over twice its limit of 5,000" in results[5]
    assert all(r.startswith("Error: ") for r in results)
    assert "x" not in await bot.block("cy", "human")


async def test_read_only_block_cannot_be_edited() -> None:
    from botmem.app import App
    from botmem.stores.memory import memory_stores
    from botmem.testing import FakeAdapter, ScriptedLLM
    from botmem.testing.embeddings import HashEmbedder
    from tests.helpers import make_settings

    settings = make_settings(
        agent={"blocks": [{"label": "rules", "value": "Be kind.", "read_only": True}]}
    )
    llm = ScriptedLLM([call("memory_rethink", label="rules", new_memory="Be rude."), reply("ok")])
    async with await App.open(
        settings, llm=llm, stores=memory_stores(), embedder=HashEmbedder()
    ) as app:
        chat = FakeAdapter()
        await app.start([chat])
        assert await chat.say("dan", "hi") == "ok"
        assert "read-only" in llm.tool_requests[1].messages[-1]["content"]
        assert "read-only" in llm.tool_requests[0].system  # rendered with its metadata
        block = await app.stores.blocks.get("fake:dan", "rules")
        assert block is not None and block.value == "Be kind."


async def test_max_steps_stops_a_runaway_loop_with_an_apology(bot: Bot) -> None:
    queries = iter(range(1000))
    bot.llm.responder = lambda _m: call("conversation_search", query=f"q{next(queries)}")
    assert await bot.chat.say("eve", "loop forever") == STUCK_REPLY
    assert len(bot.llm.tool_requests) == bot.app.settings.llm.max_steps
    history = await bot.stores.history.since("fake:eve", 0)
    assert history[-1].content == STUCK_REPLY


async def test_repeated_identical_calls_trip_the_breaker(bot: Bot) -> None:
    bot.llm.responder = lambda _m: call("conversation_search", query="same")
    assert await bot.chat.say("fay", "hi") == STUCK_REPLY
    assert len(bot.llm.tool_requests) == bot.app.settings.agent.max_repeated_calls


async def test_llm_failure_gives_an_apology_and_the_next_turn_works(bot: Bot) -> None:
    bot.llm.extend(
        [
            call("core_memory_append", label="human", content="likes tea"),
            LLMError("down", retryable=True),
        ]
    )
    assert await bot.chat.say("gus", "I like tea") == LLM_DOWN_REPLY
    bot.llm.extend([reply("back again")])
    assert await bot.chat.say("gus", "hello?") == "back again"
    last = bot.llm.tool_requests[-1].messages
    roles = [m["role"] for m in last[1:]]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    assert "likes tea" in await bot.block("gus", "human")


async def test_several_calls_in_one_step_all_run(bot: Bot) -> None:
    bot.llm.extend(
        [
            calls(
                ("core_memory_append", {"label": "human", "content": "a"}),
                ("core_memory_append", {"label": "human", "content": "b"}),
                ("send_message", {"message": "noted"}),
                text="thinking...",
            ),
        ]
    )
    assert await bot.chat.say("hal", "a and b") == "noted"
    assert (await bot.block("hal", "human")).endswith("a\nb")


async def test_empty_completion_is_asked_again(bot: Bot) -> None:
    bot.llm.extend([reply(""), reply("second try")])
    assert await bot.chat.say("ivy", "hi") == "second try"


async def test_tool_results_are_stored_in_recall(bot: Bot) -> None:
    bot.llm.extend([call("conversation_search", query="zebra"), reply("none found")])
    await bot.chat.say("jon", "what did I say about zebras?")
    history = await bot.stores.history.since("fake:jon", 0)
    tool_msg = next(m for m in history if m.role == "tool")
    assert tool_msg.name == "conversation_search"
    assert tool_msg.tokens > 0
    assert json.loads(history[1].tool_calls[0].arguments) == {"query": "zebra"}


async def test_conversation_search_skips_the_turn_being_answered(bot: Bot) -> None:
    bot.llm.extend([reply("noted")])
    await bot.chat.say("kay", "I signed up for the Berlin marathon")
    bot.llm.extend([call("conversation_search", query="marathon"), reply("yes")])
    await bot.chat.say("kay", "did I mention a marathon?")
    result = bot.llm.tool_requests[-1].messages[-1]["content"]
    assert "I signed up for the Berlin marathon" in result
    assert "did I mention" not in result
