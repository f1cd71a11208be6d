"""An agent's own model (AGENT_MODEL, set by the runner for agents made with `model=`):
the configured api_base and key apply to it only when it names the configured provider."""

from __future__ import annotations

import pytest

from botmem.errors import LLMError
from botmem.llm.base import AGENT_MODEL
from botmem.testing.openai_server import FakeOpenAIServer, text
from tests.llm.test_litellm_client import HELLO
from tests.llm.test_openai_http import direct


async def test_a_model_of_the_configured_provider_goes_to_the_configured_server() -> None:
    async with FakeOpenAIServer() as server, direct(server.base_url) as client:
        server.queue(text("from gpt-4.1"))
        token = AGENT_MODEL.set("openai/gpt-4.1")
        try:
            completion = await client.complete(HELLO)
        finally:
            AGENT_MODEL.reset(token)
        server.queue(text("from the default"))
        default = await client.complete(HELLO)
    assert (completion.text, default.text) == ("from gpt-4.1", "from the default")
    assert [r["model"] for r in server.requests] == ["gpt-4.1", "test-model"]


async def test_another_provider_s_model_never_gets_the_configured_server_or_key() -> None:
    async with FakeOpenAIServer() as server, direct(server.base_url, max_retries=0) as client:
        token = AGENT_MODEL.set("anthropic/claude-sonnet-4")
        try:
            with pytest.raises(LLMError) as failed:  # offline: Anthropic cannot be reached
                await client.complete(HELLO)
        finally:
            AGENT_MODEL.reset(token)
    assert server.requests == []  # not sent to the OpenAI-compatible server configured
    assert "anthropic/claude-sonnet-4" in str(failed.value)
