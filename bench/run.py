"""All the product benchmarks in one run: a table, then one JSON line (the last line).

Each scenario runs in a fresh subprocess (its own imports, caches and peak RSS) against the
stub LLM of bench/stub_llm.py, also a process of its own, through the real LiteLLMClient,
with SQLite on disk and the default offline embedder, as a user's bot would run. Usage:

    python bench/run.py                        # everything, a few minutes
    python bench/run.py --only latency,startup # some of it
    python bench/run.py --model hosted_vllm/stub  # litellm's httpx path instead of the openai SDK
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGETS = {
    "p50_ms": ("<=", 15),
    "p95_ms": ("<=", 30),
    "growth": ("<=", 1.2),
    "framework_p50_ms": ("<=", 3),
    "throughput_100": (">=", 150),
    "throughput_1000": (">=", 150),
    "startup_s": ("<=", 3),
    "help_s": ("<=", 0.3),
    "rss_mb_1000": ("<=", 300),
    "prompt_tokens_200": ("<=", 6000),
}
MODEL = os.environ.get("BOTMEM_BENCH_MODEL", "openai/stub")
SCENARIOS = ("latency", "framework", "throughput_100", "throughput_1000", "startup", "help")


def settings_for(stub_url: str, data_dir: str) -> Any:
    from botmem.config import Settings

    return Settings.model_validate(
        {
            "llm": {"model": MODEL, "api_base": stub_url, "max_retries": 0},
            "storage": {"data_dir": data_dir},
            # a benchmark is one very busy user: measure turns, not the per-user limits
            "limits": {"messages_per_minute": 0, "tokens_per_hour": 0, "tokens_per_day": 0},
        }
    )


class Recording:
    """The real LLM client, keeping what each call sent (to count the prompt afterwards)."""

    def __init__(self, inner: Any):
        self._inner = inner
        self.sent: list[tuple[list[dict[str, Any]], Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def complete(self, messages: list[dict[str, Any]], tools: Any = None, **kw: Any) -> Any:
        self.sent.append((messages, tools))
        return await self._inner.complete(messages, tools, **kw)


async def latency(stub_url: str, count: int = 200) -> dict[str, Any]:
    """One agent, `count` messages in a row: per-message latency and the prompt at the end."""
    from botmem.app import App, build_llm
    from botmem.testing import FakeAdapter

    with tempfile.TemporaryDirectory() as data_dir:
        settings = settings_for(stub_url, data_dir)
        llm = Recording(build_llm(settings))
        async with await App.open(settings, llm=llm) as app:  # type: ignore[arg-type]
            chat = FakeAdapter()
            await app.start([chat])
            await chat.say("warmup", "hello")  # first-call costs (tokenizer, connection)
            timings = []
            for i in range(count):
                llm.sent.clear()
                start = time.perf_counter()
                await chat.say("bench", f"message {i}: how was your day, and what did I say?")
                timings.append((time.perf_counter() - start) * 1000)
            first_step, tools = llm.sent[0]
            tools_msg = {"role": "system", "content": json.dumps(tools)}
            prompt_tokens = llm.count_tokens([*first_step, tools_msg])
            await app.stop()
    quarter = count // 4
    return {
        "p50_ms": statistics.median(timings),
        "p95_ms": statistics.quantiles(timings, n=20)[18],
        "growth": statistics.median(timings[-quarter:]) / statistics.median(timings[:quarter]),
        "prompt_tokens_200": prompt_tokens,
    }


async def framework() -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from framework_overhead import per_message_ms

    timings = await per_message_ms(200)
    return {"framework_p50_ms": statistics.median(timings)}


async def throughput(stub_url: str, agents: int) -> dict[str, Any]:
    """`agents` people message at once, each waiting for its reply before the next message."""
    from botmem.app import App
    from botmem.testing import FakeAdapter

    per_agent = max(2, 1000 // agents)
    with tempfile.TemporaryDirectory() as data_dir:
        settings = settings_for(stub_url, data_dir)
        async with await App.open(settings) as app:
            chat = FakeAdapter()
            await app.start([chat])
            await chat.say("warmup", "hello")

            async def person(n: int) -> None:
                for i in range(per_agent):
                    await chat.say(f"user{n}", f"message {i} from user {n}")

            start = time.perf_counter()
            await asyncio.gather(*(person(n) for n in range(agents)))
            elapsed = time.perf_counter() - start
            await app.stop()
    result = {f"throughput_{agents}": agents * per_agent / elapsed}
    if agents >= 1000:
        result[f"rss_mb_{agents}"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def startup(stub_url: str, runs: int = 3) -> dict[str, Any]:
    """Process start to the first reply of `botmem chat` (imports, migrations, models, a turn)."""
    samples = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as data_dir:
            config = Path(data_dir) / "config.toml"
            config.write_text(
                f'[llm]\nmodel = "{MODEL}"\napi_base = "{stub_url}"\n'
                f'[storage]\ndata_dir = "{data_dir}"\n'
            )
            start = time.perf_counter()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "botmem.cli",
                    "chat",
                    "--config",
                    str(config),
                    "--user",
                    "a",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert proc.stdin and proc.stdout
            proc.stdin.write("hello\n")
            proc.stdin.flush()
            proc.stdout.readline()
            samples.append(time.perf_counter() - start)
            proc.stdin.close()
            proc.wait(timeout=60)
    return {"startup_s": statistics.median(samples)}


def help_time(runs: int = 5) -> dict[str, Any]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "botmem.cli", "--help"], check=True, capture_output=True
        )
        samples.append(time.perf_counter() - start)
    return {"help_s": statistics.median(samples)}


def scenario(name: str, stub_url: str) -> dict[str, Any]:
    if name == "latency":
        return asyncio.run(latency(stub_url))
    if name == "framework":
        return asyncio.run(framework())
    if name.startswith("throughput_"):
        return asyncio.run(throughput(stub_url, int(name.split("_")[1])))
    if name == "startup":
        return startup(stub_url)
    if name == "help":
        return help_time()
    raise SystemExit(f"unknown scenario {name!r}; one of {', '.join(SCENARIOS)}")


def run_in_subprocess(name: str, stub_url: str) -> dict[str, Any]:
    started = time.perf_counter()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [sys.executable, __file__, "--scenario", name, "--stub", stub_url],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"scenario {name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {name}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return result


def table(results: dict[str, Any]) -> str:
    lines = [f"{'figure':20} {'measured':>10}  target   met"]
    for key, (op, goal) in TARGETS.items():
        if key not in results:
            continue
        value = results[key]
        met = value <= goal if op == "<=" else value >= goal
        lines.append(f"{key:20} {value:>10.2f}  {op} {goal:<6} {'yes' if met else 'NO'}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--model", default=MODEL, help="the litellm model string for the stub")
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    parser.add_argument("--stub", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:  # inside a scenario's own process
        print(json.dumps(scenario(args.scenario, args.stub)))
        return
    os.environ["BOTMEM_BENCH_MODEL"] = args.model  # read by each scenario's process
    names = args.only.split(",") if args.only else list(SCENARIOS)
    stub = subprocess.Popen(
        [sys.executable, str(HERE / "stub_llm.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert stub.stdout is not None
        stub_url = stub.stdout.readline().strip()
        results: dict[str, Any] = {}
        for name in names:
            results.update(run_in_subprocess(name, stub_url))
    finally:
        stub.terminate()
        stub.wait()
    rounded = {k: round(results[k], 2) for k in TARGETS if k in results}
    print(table(rounded))
    print(json.dumps(rounded))


if __name__ == "__main__":
    main()
