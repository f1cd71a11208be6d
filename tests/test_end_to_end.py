"""End to end through the real LiteLLMClient against an OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from botmem.app import App
from botmem.config import load_settings
from botmem.testing import FakeAdapter
from botmem.testing.openai_server import FakeOpenAIServer, text, tool_call


def _write_config(tmp_path: Path, base_url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[llm]\nmodel = "openai/test-model"\napi_base = "{base_url}"\n'
        'api_key_env = "BOTMEM_TEST_KEY"\ncontext_window = 16000\nmax_retries = 0\n'
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
        '[agent]\nhuman = "Nothing known yet."\n'
    )
    return path


async def test_memory_survives_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTMEM_TEST_KEY", "sk-test")
    async with FakeOpenAIServer() as server:
        settings = load_settings(_write_config(tmp_path, server.base_url))
        server.queue(
            tool_call("core_memory_append", {"label": "human", "content": "Name: Brad"}),
            text("Nice to meet you, Brad!"),
        )
        async with await App.open(settings) as app:
            chat = FakeAdapter()
            await app.start([chat])
            assert await chat.say("brad", "Hi, my name is Brad.") == "Nice to meet you, Brad!"

        server.queue(text("You are Brad."))
        async with await App.open(settings) as app:  # a new process would do the same
            chat = FakeAdapter()
            await app.start([chat])
            assert await chat.say("brad", "Who am I?") == "You are Brad."

    first, second, third = server.requests
    assert first["model"] == "test-model"
    assert {t["function"]["name"] for t in first["tools"]} >= {"core_memory_append", "send_message"}
    assert "Name: Brad" not in first["messages"][0]["content"]
    assert second["messages"][-1]["role"] == "tool"
    assert "Name: Brad" in third["messages"][0]["content"]  # the system prompt after restart
    assert server.headers[0]["authorization"] == "Bearer sk-test"


async def _chat(config: Path, user: str, lines: str) -> tuple[str, str, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "botmem.cli",
        "chat",
        "--config",
        str(config),
        "--user",
        user,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "BOTMEM_TEST_KEY": "sk-test"},
    )
    out, err = await asyncio.wait_for(proc.communicate(lines.encode()), timeout=120)
    return out.decode(), err.decode(), proc.returncode or 0


async def test_console_chat_through_the_cli_remembers_across_runs(tmp_path: Path) -> None:
    async with FakeOpenAIServer() as server:
        config = _write_config(tmp_path, server.base_url)
        server.queue(
            tool_call("core_memory_append", {"label": "human", "content": "Name: Ada"}),
            text("Hello Ada!\nGood to meet you."),
            text("Noted."),
        )
        out, err, code = await _chat(config, "ada", "I'm Ada\n\nI like chess\n")
        assert code == 0, err
        assert out == "Hello Ada! Good to meet you.\nNoted.\n"  # one line per reply, nothing else

        server.queue(text("You are Ada."))
        out, err, code = await _chat(config, "ada", "Who am I?\n")
        assert (out, code) == ("You are Ada.\n", 0), err
        assert "Name: Ada" in server.requests[-1]["messages"][0]["content"]

        show = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "botmem.cli",
            "memory",
            "show",
            "--config",
            str(config),
            "--user",
            "ada",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        shown = (await show.communicate())[0].decode()
        assert "[human] " in shown and "/5000 chars" in shown and "Name: Ada" in shown

        export = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "botmem.cli",
            "memory",
            "export",
            "--config",
            str(config),
            "--user",
            "ada",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        data = json.loads((await export.communicate())[0])
        assert [m["content"] for m in data["messages"] if m["role"] == "user"] == [
            "I'm Ada",
            "I like chess",
            "Who am I?",
        ]


async def test_an_openai_compatible_server_needs_no_key(tmp_path: Path) -> None:
    async with FakeOpenAIServer() as server:
        server.queue(text("hello from a local model"))
        settings = load_settings(
            None,
            {
                "BOTMEM_LLM__MODEL": "openai/local",
                "BOTMEM_LLM__API_BASE": server.base_url,
                "BOTMEM_STORAGE__DATA_DIR": str(tmp_path),
            },
        )
        async with await App.open(settings) as app:
            chat = FakeAdapter()
            await app.start([chat])
            assert await chat.say("lo", "hi") == "hello from a local model"
