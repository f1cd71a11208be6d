"""`botmem serve` as an operator starts it: a real process, Letta's client, a fake LLM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from letta_client import APIStatusError, AsyncLetta

from botmem.errors import ConfigError
from botmem.server.serve import api_key
from botmem.testing.openai_server import FakeOpenAIServer, text
from tests.helpers import make_settings

START_TIMEOUT = 90  # a cold start loads the embedding model


def test_without_a_key_only_loopback_is_served() -> None:
    settings = make_settings()
    assert api_key(settings, "127.0.0.1", {}) is None
    assert api_key(settings, "::1", {}) is None
    with pytest.raises(ConfigError, match=r"server\.api_key_env.*0\.0\.0\.0 without an API key"):
        api_key(settings, "0.0.0.0", {})


def test_a_configured_key_must_be_set() -> None:
    settings = make_settings(server={"api_key_env": "BOTMEM_API_KEY"})
    assert api_key(settings, "0.0.0.0", {"BOTMEM_API_KEY": "s3cret"}) == "s3cret"
    with pytest.raises(ConfigError, match=r"BOTMEM_API_KEY .* is empty or not set"):
        api_key(settings, "127.0.0.1", {})


async def _started_url(process: asyncio.subprocess.Process) -> tuple[str, list[str]]:
    assert process.stderr is not None
    lines: list[str] = []
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), START_TIMEOUT)).decode()
        assert line, "botmem serve exited:\n" + "".join(lines)
        lines.append(line)
        found = re.search(r"serving the API on (http://\S+)", line)
        if found:
            return found.group(1), lines


async def test_botmem_serve_answers_letta_s_client_and_stops_cleanly(tmp_path: Path) -> None:
    async with FakeOpenAIServer() as llm:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[llm]\nmodel = "openai/test-model"\napi_base = "{llm.base_url}"\n'
            f'max_retries = 0\n\n[storage]\ndata_dir = "{tmp_path / "data"}"\n\n'
            '[server]\napi_key_env = "BOTMEM_TEST_KEY"\n\n[runtime]\nshutdown_grace = 5\n'
        )
        llm.queue(text("Hello Brad!"))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "botmem.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            "0",
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "BOTMEM_TEST_KEY": "k-1"},
        )
        try:
            url, _ = await _started_url(process)
            assert url.startswith("http://127.0.0.1:")
            client = AsyncLetta(base_url=url, api_key="k-1", max_retries=0)
            agent = await client.agents.create(memory_blocks=[{"label": "human", "value": "?"}])
            assert [a.id async for a in client.agents.list()] == [agent.id]
            with pytest.raises(APIStatusError) as refused:
                await AsyncLetta(base_url=url, api_key="wrong", max_retries=0).agents.list()
            assert refused.value.status_code == 401
            await client.close()
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err.decode()
        assert "stopped" in err.decode()
