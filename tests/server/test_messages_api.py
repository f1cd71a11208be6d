"""Messages over the HTTP API, through Letta's client: a turn (blocking or streamed), the
history, a busy agent, a client that goes away."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from letta_client import (
    APIStatusError,
    ConflictError,
    NotFoundError,
    RateLimitError,
    UnprocessableEntityError,
)
from letta_client.types import MessageCreateParam

from botmem.server.ids import agent_key
from botmem.testing.openai_server import error, text, tool_call
from tests.server.conftest import Served

BRAD: list[MessageCreateParam] = [
    {"role": "user", "content": "Hey, nice to meet you, my name is Brad."}
]
EDIT_HUMAN = tool_call("core_memory_append", {"label": "human", "content": "Name: Brad"})


async def new_agent(served: Served) -> Any:
    return await served.client.agents.create(
        memory_blocks=[{"label": "human", "value": ""}, {"label": "persona", "value": "Sam"}]
    )


async def until(condition: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_letta_hello_world_runs_unchanged(served: Served) -> None:
    client = served.client
    served.llm.queue(
        tool_call(
            "send_message",
            {"message": "Hi Brad! Nice to meet you too."},
            content="The user told me their name.",
        )
    )
    agent_state = await client.agents.create(
        model="openai/gpt-4.1",
        memory_blocks=[
            {"label": "human", "value": "The human's name is Chad. They like vibe coding."},
            {"label": "persona", "value": "My name is Sam, the all-knowing sentient AI."},
        ],
        tools=["web_search", "run_code"],
    )
    response = await client.agents.messages.create(agent_id=agent_state.id, messages=BRAD)
    for message in response.messages:
        print(message)
    assert [m.message_type for m in response.messages] == [
        "reasoning_message",
        "assistant_message",
    ]
    reasoning, reply = response.messages
    assert reasoning.reasoning == "The user told me their name."
    assert reply.content == "Hi Brad! Nice to meet you too."
    assert reply.id == reasoning.id and reply.id.startswith("message-")
    assert response.stop_reason.stop_reason == "end_turn"
    assert response.usage.step_count == 1 and (response.usage.completion_tokens or 0) > 0
    assert served.llm.requests[-1]["model"] == "gpt-4.1"  # the agent's model, not the default
    assert "Hey, nice to meet you, my name is Brad." in str(served.llm.requests[-1]["messages"])


async def test_a_block_edit_is_answered_as_tool_call_and_return(served: Served) -> None:
    agent = await new_agent(served)
    served.llm.queue(EDIT_HUMAN, text("Nice to meet you, Brad."))
    response = await served.client.agents.messages.create(agent.id, messages=BRAD)
    call, result, reply = response.messages
    assert call.message_type == "tool_call_message"
    assert call.tool_call.name == "core_memory_append"
    assert '"Name: Brad"' in call.tool_call.arguments
    assert result.message_type == "tool_return_message"
    assert result.status == "success"
    assert result.tool_call_id == call.tool_call.tool_call_id
    assert reply.message_type == "assistant_message"
    assert reply.content == "Nice to meet you, Brad."
    assert response.usage.step_count == 2
    # the model's own counts (the fake server's: a quarter of the request's JSON length)
    asked = [max(1, len(json.dumps(r["messages"])) // 4) for r in served.llm.requests[-2:]]
    assert response.usage.prompt_tokens == sum(asked)
    assert response.usage.total_tokens == sum(asked) + (response.usage.completion_tokens or 0)
    blocks = (await served.client.agents.retrieve(agent.id)).memory.blocks
    assert {b.label: b.value for b in blocks}["human"].endswith("Name: Brad")


async def test_a_failing_tool_call_is_an_error_return(served: Served) -> None:
    agent = await new_agent(served)
    bad = tool_call("core_memory_append", {"label": "nope", "content": "x"})
    served.llm.queue(bad, text("Sorry."))
    response = await served.client.agents.messages.create(agent.id, input="hi")
    result = response.messages[1]
    assert result.message_type == "tool_return_message"
    assert result.status == "error" and result.tool_return.startswith("Error")


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # Letta's .stream()
async def test_streaming_sends_each_step_as_it_is_stored(served: Served) -> None:
    agent = await new_agent(served)
    loop = asyncio.get_running_loop()
    served.llm.queue(EDIT_HUMAN, text("Hello Brad.", delay=0.5))
    seen: list[tuple[str, float]] = []
    stream = await served.client.agents.messages.stream(agent.id, messages=BRAD)
    async for event in stream:
        seen.append((str(event.message_type), loop.time()))
    assert [kind for kind, _at in seen] == [
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
        "stop_reason",
        "usage_statistics",
    ]
    assert seen[-1][1] - seen[0][1] > 0.3, "the tool call came before the slow second step"

    served.llm.queue(text("Again."))
    events = await served.client.agents.messages.create(agent.id, input="hi", streaming=True)
    kinds = [(e.message_type, getattr(e, "content", None)) async for e in events]
    assert kinds[0] == ("assistant_message", "Again.")
    assert kinds[-2][0] == "stop_reason" and kinds[-1][0] == "usage_statistics"


async def test_history_pages_to_the_end_in_both_orders(served: Served) -> None:
    agent = await new_agent(served)
    served.llm.queue(EDIT_HUMAN, text("Hi Brad."), text("Fine, thanks."))
    await served.client.agents.messages.create(agent.id, messages=BRAD)
    await served.client.agents.messages.create(agent.id, input="How are you?")
    oldest_first = [m async for m in served.client.agents.messages.list(agent.id, order="asc")]
    assert [m.message_type for m in oldest_first] == [
        "user_message",
        "tool_call_message",
        "tool_return_message",
        "assistant_message",
        "user_message",
        "assistant_message",
    ]
    assert oldest_first[0].content == BRAD[0]["content"]
    paged = served.client.agents.messages.list(agent.id, order="asc", limit=1)
    assert [m.id async for m in paged] == [m.id for m in oldest_first]
    newest_first = [m async for m in served.client.agents.messages.list(agent.id, limit=2)]
    assert [m.id for m in newest_first] == [m.id for m in reversed(oldest_first)]
    replies = await served.client.agents.messages.list(
        agent.id, order="asc", include_return_message_types=["assistant_message"]
    )
    assert [m.content for m in replies.items] == ["Hi Brad.", "Fine, thanks."]


async def test_unknown_agent_is_404_and_a_message_without_text_is_422(served: Served) -> None:
    missing = "agent-00000000-0000-4000-8000-000000000000"
    with pytest.raises(NotFoundError):
        await served.client.agents.messages.create(missing, messages=BRAD)
    with pytest.raises(NotFoundError):
        await served.client.agents.messages.list(missing)
    agent = await new_agent(served)
    with pytest.raises(UnprocessableEntityError) as empty:
        await served.client.agents.messages.create(agent.id, messages=[])
    assert "messages" in str(empty.value.body)
    with pytest.raises(UnprocessableEntityError) as image:
        await served.client.agents.messages.create(
            agent.id,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "url", "url": "x"}}],
                }
            ],
        )
    assert "messages[0].content[0]" in str(image.value.body)
    with pytest.raises(UnprocessableEntityError) as role:
        await served.client.agents.messages.create(
            agent.id, messages=[{"role": "assistant", "content": "I said so"}]
        )
    assert "role" in str(role.value.body)
    assert not served.llm.requests


async def test_if_busy_fail_is_409_while_a_turn_runs(served: Served) -> None:
    agent = await new_agent(served)
    served.llm.queue(text("Slow answer.", delay=1.0))
    slow = asyncio.create_task(served.client.agents.messages.create(agent.id, input="one"))
    await until(lambda: served.app.router.busy(agent_key(agent.id)))
    with pytest.raises(ConflictError):
        await served.client.agents.messages.create(
            agent.id, input="two", extra_query={"if_busy": "fail"}
        )
    answer = await slow
    assert answer.messages[0].content == "Slow answer."
    assert len(served.llm.requests) == 1  # the refused message never reached the model


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
async def test_a_client_that_goes_away_loses_nothing(served: Served) -> None:
    agent = await new_agent(served)
    key = agent_key(agent.id)
    served.llm.queue(EDIT_HUMAN, text("Done, Brad.", delay=0.5))
    call = asyncio.create_task(served.client.agents.messages.create(agent.id, messages=BRAD))
    await until(lambda: len(served.llm.requests) == 2)  # mid-turn: the second step runs
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await until(lambda: not served.app.router.busy(key))
    history = [m async for m in served.client.agents.messages.list(agent.id, order="asc")]
    assert history[-1].content == "Done, Brad."

    served.llm.queue(text("Streamed to nobody.", delay=0.5))
    stream = await served.client.agents.messages.stream(agent.id, input="again")
    await stream.close()  # gone before the reply
    await until(lambda: not served.app.router.busy(key))
    history = [m async for m in served.client.agents.messages.list(agent.id, limit=1)]
    assert history[0].content == "Streamed to nobody."


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
async def test_a_turn_that_fails_says_so(served: Served, monkeypatch: Any) -> None:
    agent = await new_agent(served)
    served.llm.queue(error(400, "bad request"))
    down = await served.client.agents.messages.create(agent.id, input="hi")
    assert down.stop_reason.stop_reason == "llm_api_error"

    async def broken(*args: Any) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(served.app.runner, "run_turn", broken)
    failed = await served.client.agents.messages.create(agent.id, input="hi")
    assert failed.stop_reason.stop_reason == "error"
    events = await served.client.agents.messages.stream(agent.id, input="hi")
    kinds = [e.message_type async for e in events]
    assert kinds == ["stop_reason", "usage_statistics"]


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
async def test_a_turn_refused_by_a_limit_is_429(served: Served, monkeypatch: Any) -> None:
    agent = await new_agent(served)

    async def over_the_limit(inbound: Any) -> str:
        return "You're sending messages too fast."

    monkeypatch.setattr(served.app.runner.limits, "refusal", over_the_limit)
    with pytest.raises(RateLimitError) as blocking:
        await served.client.agents.messages.create(agent.id, input="hi")
    assert "too fast" in str(blocking.value.body)
    with pytest.raises(RateLimitError):
        await served.client.agents.messages.stream(agent.id, input="hi")
    assert not served.llm.requests


async def test_requests_without_the_key_are_refused(served: Served) -> None:
    agent = await new_agent(served)
    stranger = served.client.with_options(api_key="wrong")
    with pytest.raises(APIStatusError) as refused:
        await stranger.agents.messages.create(agent.id, input="hi")
    assert refused.value.status_code == 401


# --- retries: the same otid (or Idempotency-Key) is answered once --------------------------


def _said(otid: str, words: str = "Remember: I like tea.") -> list[MessageCreateParam]:
    return [{"role": "user", "content": words, "otid": otid}]


def _chat_requests(served: Served) -> int:
    return sum(1 for r in served.llm.requests if r.get("tools"))


async def test_a_retried_post_with_the_same_otid_gets_the_first_turn(served: Served) -> None:
    agent = await new_agent(served)
    served.llm.queue(text("Noted: tea."))
    first = await served.client.agents.messages.create(agent.id, messages=_said("o-1"))
    calls = _chat_requests(served)
    again = await served.client.agents.messages.create(agent.id, messages=_said("o-1"))
    assert [m.id for m in again.messages] == [m.id for m in first.messages]
    assert again.messages[-1].content == "Noted: tea."
    assert _chat_requests(served) == calls  # the model was not asked again
    history = [m async for m in served.client.agents.messages.list(agent.id, order="asc")]
    assert [m.message_type for m in history].count("user_message") == 1


async def test_concurrent_posts_with_one_otid_run_one_turn(served: Served) -> None:
    agent = await new_agent(served)
    served.llm.queue(text("Slow answer.", delay=0.5))
    both = await asyncio.gather(
        served.client.agents.messages.create(agent.id, messages=_said("o-2")),
        served.client.agents.messages.create(agent.id, messages=_said("o-2")),
    )
    assert [r.messages[-1].content for r in both] == ["Slow answer.", "Slow answer."]
    assert _chat_requests(served) == 1


async def test_an_otid_never_reaches_another_agent_s_turn(served: Served) -> None:
    ann, bob = await new_agent(served), await new_agent(served)
    served.llm.queue(text("For Ann."), text("For Bob."))
    to_ann = await served.client.agents.messages.create(ann.id, messages=_said("same"))
    to_bob = await served.client.agents.messages.create(bob.id, messages=_said("same"))
    assert (to_ann.messages[-1].content, to_bob.messages[-1].content) == ("For Ann.", "For Bob.")


async def test_the_idempotency_key_header_works_like_an_otid(served: Served) -> None:
    agent = await new_agent(served)
    served.llm.queue(text("Once."))
    headers = {"Idempotency-Key": "retry-7"}
    first = await served.client.agents.messages.create(
        agent.id, messages=BRAD, extra_headers=headers
    )
    again = await served.client.agents.messages.create(
        agent.id, messages=BRAD, extra_headers=headers
    )
    assert again.messages[-1].content == first.messages[-1].content == "Once."
    assert _chat_requests(served) == 1
