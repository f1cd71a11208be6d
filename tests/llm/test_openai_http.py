"""LiteLLMClient's direct path (openai/ models on an api_base, direct_http on): botmem's own
HTTP client against FakeOpenAIServer, failures classified as through litellm, tokens counted as
litellm counts them, and litellm never imported."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest

from botmem.agent.archival_tools import ARCHIVAL_TOOLS
from botmem.agent.checkin_tools import CHECKIN_TOOLS
from botmem.agent.tools import Toolset
from botmem.app import BUILTIN_TOOLS
from botmem.errors import LLMError
from botmem.llm.litellm_client import LiteLLMClient
from botmem.testing.openai_server import (
    FakeOpenAIServer,
    Reply,
    delayed,
    error,
    text,
    tool_call,
    tool_calls,
)
from tests.llm.test_litellm_client import HELLO, MEMORY_TOOL

KEY = "sk-direct-test-key"


@contextlib.asynccontextmanager
async def direct(api_base: str, **kwargs: object) -> AsyncIterator[LiteLLMClient]:
    options: dict = {"api_base": api_base, "api_key": KEY, "retry_backoff": 0.01}
    options.update(kwargs)
    client = LiteLLMClient("openai/test-model", **options)
    try:
        yield client
    finally:
        await client.aclose()


async def test_text_reply_usage_and_the_request_sent() -> None:
    async with FakeOpenAIServer() as server, direct(server.base_url, temperature=0.2) as client:
        server.queue(text("Hi there"))
        completion = await client.complete(HELLO, max_tokens=50)
    assert completion.text == "Hi there"
    assert completion.tool_calls == ()
    assert completion.model == "openai/test-model"
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0
    assert server.requests == [
        {"model": "test-model", "messages": HELLO, "max_tokens": 50, "temperature": 0.2}
    ]
    assert server.headers[0]["authorization"] == f"Bearer {KEY}"


async def test_tool_calls_keep_raw_arguments_and_get_ids() -> None:
    async with FakeOpenAIServer() as server, direct(server.base_url) as client:
        server.queue(
            tool_calls(
                tool_call("core_memory_append", '{"label": "human", "content": ', id=""),
                tool_call("send_message", {"message": "Hi Bob"}, id="a2"),
            )
        )
        completion = await client.complete(HELLO, [MEMORY_TOOL])
    assert server.requests[0]["tools"] == [MEMORY_TOOL]
    first, second = completion.tool_calls
    assert (first.name, first.arguments) == ("core_memory_append", '{"label": "human", "content": ')
    assert first.id  # made up: the server sent none
    assert (second.id, second.name) == ("a2", "send_message")
    assert json.loads(second.arguments) == {"message": "Hi Bob"}
    assert completion.text is None


async def test_hosted_vllm_models_go_direct_too() -> None:
    async with FakeOpenAIServer() as server:
        client = LiteLLMClient("hosted_vllm/test-model", api_base=server.base_url)
        await client.complete(HELLO)
        await client.aclose()
    assert server.requests[0]["model"] == "test-model"
    assert "authorization" not in server.headers[0]  # no key, no header


@pytest.mark.parametrize(
    "first",
    [error(500, "overloaded"), error(502), error(503), error(408), error(429, "slow down")],
    ids=lambda reply: str(reply.status),
)
async def test_retryable_errors_are_retried(first: Reply) -> None:
    async with FakeOpenAIServer() as server, direct(server.base_url) as client:
        server.queue(first, text("recovered"))
        completion = await client.complete(HELLO)
    assert completion.text == "recovered"
    assert len(server.requests) == 2


async def test_timeout_is_retried() -> None:
    async with FakeOpenAIServer() as server, direct(server.base_url, timeout=0.2) as client:
        server.queue(delayed(text("too late"), 2.0), text("in time"))
        completion = await client.complete(HELLO)
    assert completion.text == "in time"
    assert len(server.requests) == 2


CONTEXT_MESSAGE = "This model's maximum context length is 8192 tokens. However, you requested 9000"


@pytest.mark.parametrize(
    ("reply", "reason", "retryable"),
    [
        (error(401, f"Incorrect API key provided: {KEY}"), "authentication failed (401)", False),
        (error(403, "forbidden"), "permission denied (403)", False),
        (error(404, "no such model"), "model or endpoint not found (404)", False),
        (error(400, "bad thing"), "bad request (400)", False),
        (error(422, "unprocessable"), "bad request (422)", False),
        (error(400, CONTEXT_MESSAGE), "context window exceeded (400)", False),
        (error(409, "conflict"), "HTTP error (409)", False),
        (error(429, "slow down"), "rate limited (429) after 3 attempts", True),
        (error(500, "boom"), "server error (500) after 3 attempts", True),
        (error(504, "gateway"), "server error (504) after 3 attempts", True),
        (delayed(text("late"), 2.0), "timed out after 0.2s after 3 attempts", True),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
async def test_failures_are_classified_like_litellm(
    reply: Reply, reason: str, retryable: bool
) -> None:
    async with (
        FakeOpenAIServer(lambda body: reply) as server,
        direct(server.base_url, timeout=0.2, max_retries=2) as client,
    ):
        with pytest.raises(LLMError) as caught:
            await client.complete(HELLO)
    message = str(caught.value)
    assert message.startswith(f"LLM call to openai/test-model failed: {reason}")
    assert caught.value.retryable is retryable
    assert len(server.requests) == (3 if retryable else 1)
    assert KEY not in message
    assert "\n" not in message


async def test_auth_error_is_not_retried_nor_falls_back() -> None:
    async with FakeOpenAIServer() as server:
        server.queue(error(401, f"Incorrect API key provided: {KEY}"))
        async with direct(server.base_url, fallbacks=["openai/other"]) as client:
            with pytest.raises(LLMError) as caught:
                await client.complete(HELLO)
    assert len(server.requests) == 1
    assert "Incorrect API key provided: ***" in str(caught.value)


async def test_the_key_is_redacted_before_a_long_detail_is_cut() -> None:
    long_key = "sk-" + "k" * 40
    async with FakeOpenAIServer() as server:
        server.queue(error(400, "x" * 230 + long_key))  # the key straddles the 300-char cut
        async with direct(server.base_url, api_key=long_key) as client:
            with pytest.raises(LLMError) as caught:
                await client.complete(HELLO)
    assert "sk-kkkk" not in str(caught.value)


@pytest.mark.parametrize("header", [{"retry-after": "0.3"}, {"retry-after-ms": "300"}])
async def test_retry_after_is_honoured(header: dict[str, str]) -> None:
    async with FakeOpenAIServer() as server, direct(server.base_url) as client:
        server.queue(error(429, "wait", headers=header), text("ok"))
        started = time.monotonic()
        completion = await client.complete(HELLO)
    assert completion.text == "ok"
    assert time.monotonic() - started >= 0.3  # the backoff alone is ~0.01 s


async def test_exhausted_retries_fall_back_to_the_next_model() -> None:
    async with FakeOpenAIServer() as server:
        server.queue(error(503), error(503), text("from the fallback"))
        async with direct(server.base_url, fallbacks=["openai/fb"], max_retries=1) as client:
            completion = await client.complete(HELLO)
    assert completion.text == "from the fallback"
    assert completion.model == "openai/fb"
    assert [r["model"] for r in server.requests] == ["test-model", "test-model", "fb"]


async def test_unreachable_server_is_a_retryable_connection_failure() -> None:
    async with FakeOpenAIServer() as server:
        base_url = server.base_url
    async with direct(base_url, max_retries=1) as client:
        with pytest.raises(LLMError) as caught:
            await client.complete(HELLO)
    assert caught.value.retryable is True
    assert "failed: connection failed after 2 attempts" in str(caught.value)


@contextlib.asynccontextmanager
async def raw_server(*bodies: bytes) -> AsyncIterator[str]:
    """An api_base whose server answers 200 with these bodies in turn, then the last one."""
    answers = list(bodies)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
        await reader.readexactly(int(length.group(1)) if length else 0)
        body = answers.pop(0) if len(answers) > 1 else answers[0]
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    finally:
        server.close()


GOOD_BODY = json.dumps({"choices": [{"message": {"role": "assistant", "content": "fine"}}]})


@pytest.mark.parametrize(
    ("body", "detail"),
    [(b"<html>Bad Gateway</html>", "not JSON"), (b'{"choices": []}', "no choices")],
)
async def test_malformed_bodies_are_retryable(body: bytes, detail: str) -> None:
    async with (
        raw_server(body, body, GOOD_BODY.encode()) as api_base,
        direct(api_base, max_retries=1) as client,
    ):
        with pytest.raises(LLMError) as caught:
            await client.complete(HELLO)
        assert (await client.complete(HELLO)).text == "fine"  # the third answer
    assert caught.value.retryable is True
    assert f"malformed response after 2 attempts: {detail}" in str(caught.value)


def realistic_prompts() -> list[tuple[list[dict], list[dict] | None]]:
    """What a turn sends: a system prompt with memory, a chat with a tool call and its result,
    and botmem's own tool schemas."""
    system = {
        "role": "system",
        "content": "You are Sam, a helpful assistant with long-term memory.\n\n"
        "### Core memory\n<human>\nName: Bob. Likes hiking in the Alps; lives in Zürich.\n"
        "</human>\n<persona>\nFriendly, concise, remembers details.\n</persona>\n\n"
        "### Memory statistics\n42 messages in recall memory; 3 archival passages.",
    }
    chat = [
        system,
        {"role": "user", "content": "Hi! I'm Bob. Next week I'm off to Chamonix for 5 days."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "core_memory_append",
                        "arguments": json.dumps(
                            {"label": "human", "content": "Trip: Chamonix, 5 days, next week."}
                        ),
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "name": "core_memory_append", "content": "ok"},
        {"role": "assistant", "content": "Noted! Chamonix in summer is lovely. Any plans?"},
        {"role": "user", "content": "Maybe the Aiguille du Midi, 3842 m. Is it worth €75?"},
    ]
    tools = Toolset([*BUILTIN_TOOLS, *ARCHIVAL_TOOLS, *CHECKIN_TOOLS]).schemas()
    return [(chat, tools), (chat, [MEMORY_TOOL]), (chat, None), (chat[:2], tools)]


@pytest.mark.parametrize("prompt", realistic_prompts())
def test_token_counts_are_within_5_percent_of_litellm(
    prompt: tuple[list[dict], list[dict] | None],
) -> None:
    messages, tools = prompt
    ours = LiteLLMClient("openai/test-model", api_base="http://127.0.0.1:1/v1")
    theirs = LiteLLMClient("openai/test-model", api_base="http://127.0.0.1:1/v1", direct_http=False)
    expected = theirs.count_tokens(messages, tools)
    assert ours.count_tokens(messages, tools) == pytest.approx(expected, rel=0.05)


def test_context_window_configured_or_from_the_model_map_or_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    local = "http://127.0.0.1:1/v1"
    assert LiteLLMClient("openai/x", api_base=local, context_window=4000).context_window == 4000
    # litellm's own map (read as a file on the direct path) knows gpt-4o-mini
    assert LiteLLMClient("openai/gpt-4o-mini", api_base=local).context_window == 128_000
    assert LiteLLMClient("hosted_vllm/gpt-4.1", api_base=local).context_window > 1_000_000
    with caplog.at_level(logging.INFO, logger="botmem.llm.litellm_client"):
        assert LiteLLMClient("openai/my-finetune", api_base=local).context_window == 8192
    assert "[llm] context_window" in caplog.text


DIRECT_RUN = """
import asyncio, sys
from botmem.llm.litellm_client import LiteLLMClient
from botmem.testing.openai_server import FakeOpenAIServer, text

async def main():
    async with FakeOpenAIServer() as server:
        server.queue(text("hello back"))
        client = LiteLLMClient("openai/test-model", api_base=server.base_url)
        await client.warm()
        assert client.count_tokens([{"role": "user", "content": "hello"}]) > 0
        assert client.context_window == 8192
        assert (await client.complete([{"role": "user", "content": "hello"}])).text == "hello back"
        await client.aclose()

asyncio.run(main())
print("litellm" in sys.modules)
"""


def test_the_direct_path_never_imports_litellm() -> None:
    out = subprocess.run(
        [sys.executable, "-c", DIRECT_RUN], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
