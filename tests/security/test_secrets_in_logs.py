"""The LLM API key and the platform token never show up in logs, errors, replies or exports.

The key is in the variable `[llm] api_key_env` names, the Telegram token in TELEGRAM_BOT_TOKEN;
both are really used (the fake LLM server sees the key, the fake Telegram the token in every
URL). The fake LLM answers some calls with errors that echo the key back, as some
OpenAI-compatible proxies do. Then everything a person or an operator can see is searched for
both secrets: every log record (DEBUG, with tracebacks), stdout and stderr, the replies and the
`/memory export` file sent to Telegram, what was stored, and what the model was sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from botmem.app import App
from botmem.platforms import build_adapters
from botmem.stores.memory import memory_stores
from botmem.testing.embeddings import HashEmbedder
from botmem.testing.openai_server import FakeOpenAIServer, Reply, error, text, tool_call
from tests.adapters.fake_telegram import FakeTelegram, message_update, user
from tests.helpers import make_settings

KEY_ENV = "BOTMEM_TEST_LLM_KEY"
ADA = user(7, "Ada")
START_TIMEOUT = 90  # a cold `botmem run` imports litellm and loads the embedding model
LOGGERS = ("", "botmem", "adapters", "litellm", "LiteLLM", "httpx", "httpcore", "telegram")


@dataclass(frozen=True)
class Secrets:
    key: str
    token: str

    def env(self) -> dict[str, str]:
        return {KEY_ENV: self.key, "TELEGRAM_BOT_TOKEN": self.token}

    def found_in(self, text: str) -> list[str]:
        """Which secret (or a long piece of one) the text holds."""
        found = []
        for name, value in (("API key", self.key), ("bot token", self.token)):
            pieces = {value, value.split(":")[-1], value.removeprefix("sk-test-")}
            if any(piece in text for piece in pieces):
                found.append(name)
        return found


@pytest.fixture
def secret_values(monkeypatch: pytest.MonkeyPatch) -> Iterator[Secrets]:
    values = Secrets(
        key=f"sk-test-{secrets.token_hex(16)}",
        token=f"{secrets.randbelow(10**9)}:AA{secrets.token_urlsafe(24)}",
    )
    for name, value in values.env().items():
        monkeypatch.setenv(name, value)
    yield values


def failures(key: str) -> list[Reply]:
    """Provider errors whose messages echo the key (some proxies do; OpenAI masks it)."""
    return [
        error(401, f"Incorrect API key provided: {key}. Find your key at example.invalid."),
        error(403, f"key {key} may not use this model"),
        error(500, f"upstream failed for Authorization: Bearer {key}"),
    ]


def script(server: FakeOpenAIServer, key: str) -> None:
    server.queue(
        tool_call("core_memory_append", {"label": "human", "content": "Name: Ada"}),
        text("Hello Ada!"),
        *failures(key),
        tool_call("archival_memory_insert", {"content": "Ada keeps bees."}),
        text("Bees, noted."),
    )


TURNS = ["Hi, I'm Ada", "Are you there?", "Still there?", "Hello??", "I keep bees."]
LLM_DOWN = "Sorry, I can't reach my language model right now. Please try again in a moment."


async def converse(telegram: FakeTelegram, timeout: float = 10) -> bytes:
    """The turns above (three of them fail at the LLM), then `/memory export`; returns the file."""
    for number, words in enumerate(TURNS, start=1):
        await telegram.push_update(message_update(7, ADA, words))
        await telegram.wait_for(
            "sendMessage", count=number, chat_id=7, timeout=timeout if number == 1 else 10
        )
    await telegram.push_update(message_update(7, ADA, "/memory export"))
    (upload,) = await telegram.wait_for("sendDocument", chat_id=7, timeout=10)
    (_filename, data) = next(iter(upload.files.values()))
    return data


def check_conversation(
    telegram: FakeTelegram, export: bytes, server: FakeOpenAIServer, key: str
) -> None:
    """The turns really ran, failures included, and every LLM call really carried the key."""
    assert telegram.texts(7) == ["Hello Ada!", LLM_DOWN, LLM_DOWN, LLM_DOWN, "Bees, noted."]
    exported = json.loads(export)
    assert exported["format"] == "botmem-agent"
    assert "Name: Ada" in json.dumps(exported)
    assert len(server.requests) == 7
    assert {h.get("authorization") for h in server.headers} == {f"Bearer {key}"}


def telegram_calls_text(telegram: FakeTelegram) -> str:
    """Everything botmem sent to Telegram (texts, captions, files), as one string."""
    parts = []
    for call in telegram.calls:
        if call.method == "getUpdates":
            continue
        parts.append(json.dumps(call.params, default=str))
        parts += [data.decode("utf-8", "replace") for _name, data in call.files.values()]
    return "\n".join(parts)


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAIServer, FakeTelegram]]:
    async with FakeOpenAIServer() as server, FakeTelegram().running() as telegram:
        yield server, telegram


async def test_in_process_debug_logs_and_outputs_hold_no_secret(
    fakes: tuple[FakeOpenAIServer, FakeTelegram],
    secret_values: Secrets,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    server, telegram = fakes
    script(server, secret_values.key)
    settings = make_settings(
        llm={
            "model": "openai/test-model",
            "api_base": server.base_url,
            "api_key_env": KEY_ENV,
            "max_retries": 0,
            "context_window": 16000,
        },
        telegram={"base_url": telegram.base_url, "poll_timeout": 1},
    )
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    adapters = build_adapters(settings)  # reads the token from the environment
    stores = memory_stores()
    app = await App.open(settings, embedder=HashEmbedder(), stores=stores)
    await app.start(adapters)
    try:
        export = await converse(telegram, timeout=60)
        history = await stores.history.since("telegram:7", 0)
        inbox = await stores.inbox.unfinished()
    finally:
        await app.stop()
        await app.aclose()
    out, err = capfd.readouterr()

    check_conversation(telegram, export, server, secret_values.key)
    httpx_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any(secret_values.token in line for line in httpx_lines)  # the token was in use
    assert "authentication failed" in caplog.text  # the failures were logged, redacted

    seen = {
        "log records": botmem_log_text(caplog),
        "stdout": out,
        "stderr": err,
        "the export": export.decode("utf-8"),
        "what was sent to Telegram": telegram_calls_text(telegram),
        "the stored history": "\n".join(f"{m.content} {m.tool_calls}" for m in history),
        "the inbox": "\n".join(str(item) for item in inbox),
        "what the model was sent": json.dumps(server.requests),
    }
    for where, content in seen.items():
        assert not secret_values.found_in(content), f"{where} hold the secret"


THIRD_PARTY_URL_LOGGERS = ("httpx", "telegram", "aiohttp.access")
"""Loggers that write the Telegram token as part of a URL: httpx logs each request
(`POST .../bot<token>/getUpdates`) at INFO, python-telegram-bot its base URL at DEBUG, and
aiohttp.access is the fake Telegram server's own access log. An embedding application
configures those itself; what `botmem run` makes of them is checked by the process test."""


def botmem_log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every other record (botmem, the adapters, litellm, httpcore, ...) with its traceback."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(
        formatter.format(r)
        for r in caplog.records
        if not r.name.startswith(THIRD_PARTY_URL_LOGGERS)
    )


# --- `botmem run -v` as an operator runs it: a real process, all of its output ---------------


def write_config(tmp_path: Path, llm_url: str, telegram_url: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[llm]\nmodel = "openai/test-model"\napi_base = "{llm_url}"\n'
        f'api_key_env = "{KEY_ENV}"\nmax_retries = 0\ncontext_window = 16000\n\n'
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n\n'
        f'[telegram]\nbase_url = "{telegram_url}"\npoll_timeout = 1\n\n'
        "[runtime]\nshutdown_grace = 5\n"
    )
    return config


@pytest.mark.parametrize("verbose", [True, False], ids=["debug", "info"])
async def test_botmem_run_output_holds_no_secret(
    fakes: tuple[FakeOpenAIServer, FakeTelegram],
    secret_values: Secrets,
    tmp_path: Path,
    verbose: bool,
) -> None:
    server, telegram = fakes
    script(server, secret_values.key)
    config = write_config(tmp_path, server.base_url, telegram.base_url)
    args = ["-m", "botmem.cli", "run", "--config", str(config), *(["-v"] if verbose else [])]
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **secret_values.env()},
    )
    try:
        export = await converse(telegram, timeout=START_TIMEOUT)
    finally:
        if bot.returncode is None:
            bot.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(bot.communicate(), 30)
    stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    assert bot.returncode == 0, stderr

    check_conversation(telegram, export, server, secret_values.key)
    assert "authentication failed" in stderr and "running on telegram" in stderr
    if verbose:
        assert " DEBUG " in stderr
    for where, content in {
        "stdout": stdout,
        "stderr": stderr,
        "the export": export.decode("utf-8"),
        "what was sent to Telegram": telegram_calls_text(telegram),
        "what the model was sent": json.dumps(server.requests),
    }.items():
        assert not secret_values.found_in(content), f"{where} hold the secret:\n{content[-3000:]}"
