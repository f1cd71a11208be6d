"""The breaker: while the primary model keeps failing, calls go straight to the fallback."""

from __future__ import annotations

from typing import Any

import pytest

from botmem.errors import LLMError
from botmem.llm.breaker import FAILURES, Breaker
from botmem.testing.openai_server import FakeOpenAIServer, Reply, error, text
from tests.llm.test_litellm_client import HELLO
from tests.llm.test_openai_http import direct


class Primary:
    """The primary model is down until `up`; the fallback always answers."""

    def __init__(self) -> None:
        self.up = False

    def __call__(self, body: dict[str, Any]) -> Reply:
        if body["model"] == "fb":
            return text("from the fallback")
        return text("from the primary") if self.up else error(503, "overloaded")


def primary_calls(server: FakeOpenAIServer) -> int:
    return sum(r["model"] == "test-model" for r in server.requests)


async def test_a_failing_primary_is_skipped_then_tried_again() -> None:
    now = [0.0]
    primary = Primary()
    async with (
        FakeOpenAIServer(primary) as server,
        direct(server.base_url, fallbacks=["openai/fb"], max_retries=1) as client,
    ):
        client._breaker = Breaker(30.0, clock=lambda: now[0])
        for _ in range(FAILURES):  # each pays the primary's two attempts
            assert (await client.complete(HELLO)).text == "from the fallback"
        assert primary_calls(server) == 2 * FAILURES

        for _ in range(5):  # open: the fallback at once, the primary not asked
            assert (await client.complete(HELLO)).text == "from the fallback"
        assert primary_calls(server) == 2 * FAILURES

        now[0] += 31  # the cooldown is over: the primary is asked again, and is back
        primary.up = True
        assert (await client.complete(HELLO)).text == "from the primary"
        assert (await client.complete(HELLO)).text == "from the primary"
    assert primary_calls(server) == 2 * FAILURES + 2


async def test_without_fallbacks_the_primary_is_always_tried() -> None:
    async with (
        FakeOpenAIServer(Primary()) as server,
        direct(server.base_url, max_retries=0) as client,
    ):
        for _ in range(FAILURES + 2):
            with pytest.raises(LLMError, match=r"service unavailable|server error"):
                await client.complete(HELLO)
    assert primary_calls(server) == FAILURES + 2


async def test_skipped_and_fallback_failed_says_both() -> None:
    async with (
        FakeOpenAIServer(lambda body: error(503, "down")) as server,
        direct(server.base_url, fallbacks=["openai/fb"], max_retries=0) as client,
    ):
        for _ in range(FAILURES):
            with pytest.raises(LLMError):
                await client.complete(HELLO)
        with pytest.raises(LLMError) as caught:
            await client.complete(HELLO)
    message = str(caught.value)
    assert "skipped: failing, tried again in" in message and "fallback openai/fb" in message


def test_a_cooldown_of_zero_never_opens() -> None:
    breaker = Breaker(0.0)
    assert not any(breaker.failed() for _ in range(10))
    assert breaker.open_for() == 0.0
