"""Real processes on PostgreSQL and a Chroma server: a Telegram gateway and two workers.

A worker is killed (SIGKILL) in the middle of a turn: its claim runs out and the other worker
runs the turn again; every message is answered exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from botmem.testing.openai_server import FakeOpenAIServer, Reply, text
from tests.adapters.fake_telegram import FakeTelegram, message_update, user
from tests.stores.chroma_server import running_chroma_server

START_TIMEOUT = 120  # cold starts on a busy 2-core machine
TOKEN = {"TELEGRAM_BOT_TOKEN": "123456:TEST"}
USERS = range(1, 7)
TURN_SECONDS = 1.0


def echo(body: dict[str, Any]) -> Reply:
    last = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    return text(f"re: {last}", delay=TURN_SECONDS)


def write_config(tmp_path: Path, pg_url: str, chroma_url: str, llm: str, telegram: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[llm]\nmodel = "openai/test-model"\napi_base = "{llm}"\nmax_retries = 0\n'
        "context_window = 16000\n\n"
        f'[storage]\ndatabase_url = "{pg_url}"\nchroma_url = "{chroma_url}"\n'
        f'data_dir = "{tmp_path / "data"}"\n\n'
        f'[telegram]\nbase_url = "{telegram}"\npoll_timeout = 1\n\n'
        "[workers]\nlease_seconds = 2\npoll_interval = 0.1\n\n"
        "[limits]\nmessages_per_minute = 0\n\n"
        "[runtime]\nshutdown_grace = 2\n"
    )
    return config


async def start(config: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "botmem.cli",
        *args,
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **TOKEN},
    )


async def stop(process: asyncio.subprocess.Process) -> str:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    return err.decode()


async def wait_until(check: Any, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_a_worker_killed_mid_turn_loses_and_repeats_no_answer(
    tmp_path: Path, pg_url: str
) -> None:
    with running_chroma_server(tmp_path / "chroma") as chroma:
        async with FakeOpenAIServer(echo) as llm, FakeTelegram().running() as telegram:
            config = write_config(tmp_path, pg_url, chroma.url, llm.base_url, telegram.base_url)
            gateway = await start(config, "run", "--role", "gateway")
            doomed = await start(config, "worker")
            survivor = None
            try:
                for n in range(2):
                    for u in USERS:
                        await telegram.push_update(message_update(u, user(u), f"u{u} m{n}"))
                await wait_until(lambda: len(llm.requests) >= 2, START_TIMEOUT)  # mid-turn
                survivor = await start(config, "worker")
                await asyncio.sleep(TURN_SECONDS / 2)
                doomed.kill()
                await doomed.wait()
                expected = 2 * len(USERS)
                await wait_until(lambda: len(telegram.texts()) >= expected, START_TIMEOUT)
                await asyncio.sleep(2.5)  # a second answer would come within a lease
            finally:
                logs = [await stop(p) for p in (gateway, survivor) if p is not None]
                await stop(doomed)
    for u in USERS:
        assert telegram.texts(u) == [f"re: u{u} m0", f"re: u{u} m1"], logs
    assert doomed.returncode == -signal.SIGKILL
    assert len(llm.requests) > 2 * len(USERS)  # the killed worker's turns were asked again
    assert all("running on" in log for log in logs)
