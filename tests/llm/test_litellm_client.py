"""LiteLLMClient through litellm (direct_http=False) against a real HTTP server
(FakeOpenAIServer): parsing, retries, fallbacks. The direct path: test_openai_http.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from botmem.errors import LLMError
from botmem.llm.litellm_client import MAX_RETRY_AFTER, LiteLLMClient
from botmem.testing.openai_server import (
    FakeOpenAIServer,
    delayed,
    error,
    text,
    tool_call,
    tool_calls,
)

HELLO = [{"role": "user", "content": "hello"}]
MEMORY_TOOL = {
    "type": "function",
    "function": {
        "name": "core_memory_append",
        "description": "Append to a core memory block.",
        "parameters": {
            "type": "object",
            "properties": {"label": {"type": "string"}, "content": {"type": "string"}},
            "required": ["label", "content"],
        },
    },
}


def make_client(server: FakeOpenAIServer, **kwargs: object) -> LiteLLMClient:
    options: dict = {
        "api_base": server.base_url,
        "api_key": "sk-test",
        "retry_backoff": 0.01,
        "direct_http": False,
    }
    options.update(kwargs)
    return LiteLLMClient("openai/test-model", **options)


async def test_text_reply_is_parsed() -> None:
    async with FakeOpenAIServer() as server:
        server.queue(text("Hi there"))
        completion = await make_client(server).complete(HELLO)
    assert completion.text == "Hi there"
    assert completion.tool_calls == ()
    assert completion.model == "openai/test-model"
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0
    assert server.requests[0]["model"] == "test-model"
    assert server.requests[0]["messages"] == HELLO
    assert server.headers[0]["authorization"] == "Bearer sk-test"


async def test_tool_calls_are_parsed_with_ids_names_and_raw_arguments() -> None:
    async with FakeOpenAIServer() as server:
        server.queue(
            tool_calls(
                tool_call(
                    "core_memory_append", {"label": "human", "content": "Name: Bob"}, id="a1"
                ),
                tool_call("send_message", {"message": "Hi Bob"}, id="a2"),
            )
        )
        completion = await make_client(server).complete(HELLO, [MEMORY_TOOL])
    assert completion.text is None
    assert [(c.id, c.name) for c in completion.tool_calls] == [
        ("a1", "core_memory_append"),
        ("a2", "send_message"),
    ]
    assert json.loads(completion.tool_calls[0].arguments) == {
        "label": "human",
        "content": "Name: Bob",
    }


async def test_malformed_tool_arguments_are_returned_raw() -> None:
    async with FakeOpenAIServer() as server:
        server.queue(tool_call("core_memory_append", '{"label": "human", "content": '))
        completion = await make_client(server).complete(HELLO, [MEMORY_TOOL])
    assert completion.tool_calls[0].arguments == '{"label": "human", "content": '


async def test_missing_tool_call_ids_are_generated_and_distinct() -> None:
    async with FakeOpenAIServer() as server:
        server.queue(tool_calls(tool_call("a", {}, id=""), tool_call("b", {}, id="")))
        completion = await make_client(server).complete(HELLO, [MEMORY_TOOL])
    ids = [c.id for c in completion.tool_calls]
    assert all(ids) and len(set(ids)) == 2


async def test_tools_and_options_are_passed_through() -> None:
    async with FakeOpenAIServer() as server:
        client = make_client(server, temperature=0.2)
        await client.complete(HELLO, [MEMORY_TOOL], max_tokens=50)
        await client.complete(HELLO)
    with_tools, without_tools = server.requests
    assert with_tools["tools"] == [MEMORY_TOOL]
    assert with_tools["max_tokens"] == 50
    assert with_tools["temperature"] == 0.2
    assert "tools" not in without_tools


async def test_server_error_then_success_is_retried() -> None:
    async with FakeOpenAIServer() as server:
        server.queue(error(500, "overloaded"), text("recovered"))
        completion = await make_client(server).complete(HELLO)
    assert completion.text == "recovered"
    assert len(server.requests) == 2


async def test_rate_limit_is_retried() -> None:
    async with FakeOpenAIServer() as server:
        server.queue(error(429, "slow down"), error(429, "slow down"), text("ok now"))
        completion = await make_client(server).complete(HELLO)
    assert completion.text == "ok now"
    assert len(server.requests) == 3


async def test_timeout_is_retried() -> None:
    async with FakeOpenAIServer() as server:
        server.queue(delayed(text("too late"), 2.0), text("in time"))
        completion = await make_client(server, timeout=0.2).complete(HELLO)
    assert completion.text == "in time"
    assert len(server.requests) == 2


async def test_auth_error_is_not_retried_and_hides_the_key() -> None:
    async with FakeOpenAIServer() as server:
        server.queue(error(401, "Incorrect API key provided: sk-test"))
        with pytest.raises(LLMError) as caught:
            await make_client(server, fallbacks=["openai/other"]).complete(HELLO)
    assert caught.value.retryable is False
    assert len(server.requests) == 1  # no retry, no fallback
    message = str(caught.value)
    assert "sk-test" not in message
    assert message.startswith("LLM call to openai/test-model failed: authentication failed (401)")
    assert "\n" not in message


@pytest.mark.parametrize("status", [400, 404])
async def test_client_errors_are_not_retried(status: int) -> None:
    async with FakeOpenAIServer() as server:
        server.queue(error(status, "nope"))
        with pytest.raises(LLMError) as caught:
            await make_client(server).complete(HELLO)
    assert caught.value.retryable is False
    assert len(server.requests) == 1


async def test_exhausted_retries_fall_back_to_the_next_model() -> None:
    async with FakeOpenAIServer() as server:
        server.queue(error(503), error(503), error(503), text("from the fallback"))
        client = make_client(server, fallbacks=["openai/fallback-model"], max_retries=2)
        completion = await client.complete(HELLO)
    assert completion.text == "from the fallback"
    assert completion.model == "openai/fallback-model"
    assert [r["model"] for r in server.requests] == ["test-model"] * 3 + ["fallback-model"]


async def test_all_models_failing_raises_a_retryable_one_line_error() -> None:
    async with FakeOpenAIServer(lambda body: error(429, "slow down")) as server:
        client = make_client(server, fallbacks=["openai/fb1", "openai/fb2"], max_retries=1)
        with pytest.raises(LLMError) as caught:
            await client.complete(HELLO)
    assert caught.value.retryable is True
    assert [r["model"] for r in server.requests] == ["test-model", "test-model", "fb1", "fb2"]
    message = str(caught.value)
    assert message.startswith(
        "LLM call to openai/test-model failed: rate limited (429) after 2 attempts"
    )
    assert "fallback openai/fb1: rate limited (429)" in message
    assert "fallback openai/fb2" in message
    assert "\n" not in message


async def test_non_retryable_fallback_error_stops_there() -> None:
    async with FakeOpenAIServer() as server:
        server.queue(error(500), error(404, "no such model"), text("never reached"))
        client = make_client(server, fallbacks=["openai/missing", "openai/fb2"], max_retries=0)
        with pytest.raises(LLMError) as caught:
            await client.complete(HELLO)
    assert caught.value.retryable is False
    assert "fallback openai/missing: model or endpoint not found (404)" in str(caught.value)
    assert len(server.requests) == 2


async def test_unreachable_server_is_a_retryable_error() -> None:
    async with FakeOpenAIServer() as server:
        base_url = server.base_url
    client = LiteLLMClient(
        "openai/test-model",
        api_base=base_url,
        api_key="sk-test",
        max_retries=1,
        retry_backoff=0.01,
        timeout=2,
        direct_http=False,
    )
    with pytest.raises(LLMError) as caught:
        await client.complete(HELLO)
    assert caught.value.retryable is True
    assert "after 2 attempts" in str(caught.value)


async def test_errors_print_nothing_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    async with FakeOpenAIServer(lambda body: error(500)) as server:
        with pytest.raises(LLMError):
            await make_client(server, max_retries=1).complete(HELLO)
        server.queue(error(401, "bad key"))
        with pytest.raises(LLMError):
            await make_client(server).complete(HELLO)
    assert capsys.readouterr().out == ""


def test_retry_delay_backs_off_and_honours_retry_after() -> None:
    client = LiteLLMClient("openai/test-model", retry_backoff=0.5)
    assert 0.5 <= client._delay(0, None) <= 0.75
    assert 2.0 <= client._delay(2, None) <= 3.0
    assert client._delay(0, 4.0) == 4.0
    assert client._delay(0, 3600.0) == MAX_RETRY_AFTER


async def test_retry_after_hint_is_read_from_the_response() -> None:
    async with FakeOpenAIServer() as server:
        server.queue(error(429, "wait", headers={"retry-after-ms": "300"}), text("ok"))
        client = make_client(server)
        seen: list[float | None] = []
        original = client._delay

        def spy(attempt: int, retry_after: float | None) -> float:
            seen.append(retry_after)
            return original(attempt, None)

        client._delay = spy  # type: ignore[method-assign]
        await client.complete(HELLO)
    assert seen == [pytest.approx(0.3)]


def test_count_tokens_is_positive_and_grows_with_content() -> None:
    client = LiteLLMClient("openai/test-model")
    short = client.count_tokens(HELLO)
    longer = client.count_tokens([*HELLO, {"role": "assistant", "content": "word " * 200}])
    assert short > 0
    assert longer > short + 150
    assert client.count_tokens(HELLO, [MEMORY_TOOL]) > short


def test_count_tokens_handles_tool_call_messages_and_unknown_models() -> None:
    client = LiteLLMClient("someprovider/never-heard-of-it")
    messages = [
        *HELLO,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "send_message", "arguments": "{not json"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "error: bad JSON"},
    ]
    assert client.count_tokens(messages) > client.count_tokens(HELLO)


def test_context_window_comes_from_config_or_litellm_or_default() -> None:
    assert LiteLLMClient("openai/test-model", context_window=4000).context_window == 4000
    assert LiteLLMClient("openai/gpt-4o-mini").context_window == 128000
    assert LiteLLMClient("openai/test-model").context_window == 8192


async def test_warm_loads_everything_without_error() -> None:
    client = LiteLLMClient("openai/gpt-4o-mini")
    await client.warm()
    await client.aclose()


def test_repr_hides_the_key() -> None:
    assert "sk-secret" not in repr(LiteLLMClient("openai/x", api_key="sk-secret"))


def test_importing_the_client_does_not_import_litellm() -> None:
    code = (
        "import sys, botmem.llm.litellm_client, botmem.testing.openai_server;"
        "print('litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_openai_compatible_servers_take_litellm_s_httpx_path() -> None:
    from botmem.llm.litellm_client import wire_model

    local = {"api_base": "http://127.0.0.1:8000/v1"}
    assert wire_model("openai/llama3", local) == "hosted_vllm/llama3"
    assert wire_model("openai/gpt-4o-mini", {"api_base": None}) == "openai/gpt-4o-mini"
    assert wire_model("anthropic/claude-3-5-haiku", local) == "anthropic/claude-3-5-haiku"
