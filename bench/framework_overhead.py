"""Framework-only cost per message: ScriptedLLM (no network), real SQLite on disk.

The same conversation as the latency benchmark of bench/run.py, with the same model
behaviour as bench/stub_llm.py (a memory tool on the first step of a turn, alternately
`core_memory_append` and `conversation_search`, then a reply) and the same context window
(8,192 tokens, litellm's default for an unknown model), so only the network is missing.
Prints p50/p95 per message over N messages for one agent, and how messages at the end of
the conversation compare with those at the start (growth). Usage:

    python bench/framework_overhead.py [--messages 200]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from botmem.app import App
from botmem.config import Settings
from botmem.testing import FakeAdapter, ScriptedLLM, call, reply

_turns = itertools.count()
CONTEXT_WINDOW = 8192


def _responder(messages: list[dict[str, Any]]) -> Any:
    if messages[-1]["role"] == "tool":
        return reply("Noted, thanks for telling me.")
    n = next(_turns)
    if n % 2:
        return call("conversation_search", query=f"topic {n % 7}")
    return call("core_memory_append", label="human", content=f"fact {n}")


async def per_message_ms(count: int) -> list[float]:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings.model_validate(
            {
                "llm": {"model": "scripted"},
                "storage": {"data_dir": data_dir},
                "limits": {"messages_per_minute": 0, "tokens_per_hour": 0, "tokens_per_day": 0},
            }
        )
        llm = ScriptedLLM(context_window=CONTEXT_WINDOW, responder=_responder)
        async with await App.open(settings, llm=llm) as app:
            chat = FakeAdapter()
            await app.start([chat])
            timings = []
            for i in range(count):
                start = time.perf_counter()
                await chat.say("bench", f"message {i}: how was your day, and what did I say?")
                timings.append((time.perf_counter() - start) * 1000)
    return timings


def help_seconds(runs: int = 5) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "botmem.cli", "--help"], check=True, capture_output=True
        )
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    timings = asyncio.run(per_message_ms(args.messages))
    quarter = max(1, len(timings) // 4)
    result = {
        "framework_p50_ms": round(statistics.median(timings), 2),
        "framework_p95_ms": round(statistics.quantiles(timings, n=20)[18], 2),
        "growth": round(
            statistics.median(timings[-quarter:]) / statistics.median(timings[:quarter]), 2
        ),
        "help_s": round(help_seconds(), 3),
    }
    print(f"messages: {args.messages} (2 steps each, ScriptedLLM, SQLite on disk)")
    for key, value in result.items():
        print(f"  {key:18} {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
