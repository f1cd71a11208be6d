"""Starting platforms that fail to connect, and stopping with turns in flight."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import pytest

from botmem import app as app_module
from botmem.adapter import InboundHandler
from botmem.errors import ConfigError
from botmem.platforms import build_adapters
from botmem.stores.memory import memory_stores
from botmem.testing import FakeAdapter, ScriptedLLM
from botmem.testing.scripted import reply
from tests.helpers import make_settings, open_app


class FlakyAdapter(FakeAdapter):
    """Refuses to connect `failures` times, like a platform that is down for a while."""

    def __init__(self, name: str, failures: int):
        super().__init__(name)
        self.failures = failures
        self.attempts = 0

    async def start(self, handle: InboundHandler) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError("platform unreachable")
        await super().start(handle)


async def test_a_platform_that_cannot_connect_is_retried_while_others_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(app_module, "RETRY_FIRST_DELAY", 0.01)
    llm = ScriptedLLM([reply("still here"), reply("back online")])
    app = await open_app(make_settings(), llm)
    flaky, healthy = FlakyAdapter("flaky", failures=2), FakeAdapter("healthy")
    await app.start([flaky, healthy])
    assert await healthy.say("ann", "hello?") == "still here"
    for _ in range(200):
        if flaky.attempts == 3:
            break
        await asyncio.sleep(0.01)
    assert flaky.attempts == 3
    assert await flaky.say("bob", "hi") == "back online"
    assert "flaky: could not start: ConnectionError: platform unreachable" in caplog.text
    await app.stop()
    await app.aclose()


async def test_shutdown_leaves_slow_turns_to_be_replayed_at_the_next_start() -> None:
    stores = memory_stores()
    blocking = ScriptedLLM()

    async def complete(*args: Any, **kwargs: Any) -> Any:
        await asyncio.Event().wait()  # a model that never answers

    blocking.complete = complete  # type: ignore[method-assign]
    app = await open_app(make_settings(), blocking, stores=stores)
    chat = FakeAdapter()
    await app.start([chat])
    turn = await app.handle(chat.inbound("ann", "a question that takes long"))
    assert turn is not None
    await asyncio.sleep(0.05)
    await app.shutdown(grace=0.05)
    assert turn.cancelled() and chat.sent == []
    (item,) = await stores.inbox.unfinished()
    assert item.status == "pending"

    llm2 = ScriptedLLM([reply("Here is the answer.")])
    app2 = await open_app(make_settings(), llm2, stores=stores)
    chat2 = FakeAdapter()
    await app2.start([chat2])
    await app2.router.drain()
    assert [m.text for m in chat2.sent] == ["Here is the answer."]
    await app2.aclose()


def test_no_platform_configured_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"no chat platform configured.*botmem chat"):
        build_adapters(make_settings(), {})


def test_missing_tokens_are_named_all_at_once() -> None:
    settings = make_settings(telegram={}, slack={"mode": "http"}, discord={"enabled": False})
    with pytest.raises(ConfigError) as caught:
        build_adapters(settings, {})
    message = str(caught.value)
    assert "[telegram] set the environment variable TELEGRAM_BOT_TOKEN" in message
    assert "[slack] set the environment variable SLACK_BOT_TOKEN" in message
    assert "SLACK_SIGNING_SECRET" in message and "discord" not in message


def test_a_missing_sdk_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "discord" else real(name)
    )
    with pytest.raises(
        ConfigError, match=r'\[discord\] needs its SDK: pip install "botmem\[discord\]"'
    ):
        build_adapters(make_settings(discord={}), {"DISCORD_BOT_TOKEN": "x"})
