"""`botmem run` as an operator starts it: a real process, a fake Telegram and a fake LLM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from botmem.testing.openai_server import FakeOpenAIServer, text, tool_call
from tests.adapters.fake_telegram import FakeTelegram, message_update, user

ADA = user(7, "Ada")
START_TIMEOUT = 90  # a cold start imports litellm and loads the embedding model


def write_config(tmp_path: Path, llm_url: str, telegram_url: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[llm]\nmodel = "openai/test-model"\napi_base = "{llm_url}"\nmax_retries = 0\n'
        f'context_window = 16000\n\n[storage]\ndata_dir = "{tmp_path / "data"}"\n\n'
        f'[telegram]\nbase_url = "{telegram_url}"\npoll_timeout = 1\n\n'
        "[runtime]\nshutdown_grace = 5\n"
    )
    return config


async def start_bot(config: Path, **env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "botmem.cli",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )


async def test_botmem_run_answers_on_telegram_and_stops_cleanly(tmp_path: Path) -> None:
    async with FakeOpenAIServer() as llm, FakeTelegram().running() as telegram:
        config = write_config(tmp_path, llm.base_url, telegram.base_url)
        llm.queue(
            tool_call("core_memory_append", {"label": "human", "content": "Name: Ada"}),
            text("Hello Ada!"),
        )
        bot = await start_bot(config, TELEGRAM_BOT_TOKEN="123456:TEST")
        try:
            await telegram.push_update(message_update(7, ADA, "Hi, I'm Ada"))
            await telegram.wait_for("sendMessage", timeout=START_TIMEOUT)
            assert telegram.texts(7) == ["Hello Ada!"]
        finally:
            bot.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(bot.communicate(), 30)
        assert bot.returncode == 0, err.decode()
        log = err.decode()
        assert "running on telegram" in log and "stopped" in log

        # restarted on the same data, the agent still knows Ada
        llm.queue(text("You are Ada."))
        bot = await start_bot(config, TELEGRAM_BOT_TOKEN="123456:TEST")
        try:
            await telegram.push_update(message_update(7, ADA, "Who am I?"))
            await telegram.wait_for("sendMessage", count=2, timeout=START_TIMEOUT)
        finally:
            bot.send_signal(signal.SIGINT)
            await asyncio.wait_for(bot.communicate(), 30)
        assert telegram.texts(7) == ["Hello Ada!", "You are Ada."]
        assert "Name: Ada" in llm.requests[-1]["messages"][0]["content"]
        assert bot.returncode == 0


async def test_botmem_run_without_a_token_names_the_variable(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/bot")
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "botmem.cli",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    _, err = await asyncio.wait_for(bot.communicate(), 60)
    assert bot.returncode == 2
    assert "set the environment variable TELEGRAM_BOT_TOKEN" in err.decode()
