"""Scale-out benchmark: N `botmem worker` processes sharing one PostgreSQL and one Chroma server.

For each worker count: a fresh database, Chroma server and stub LLM; every message is stored
in the inbox first (as a gateway would), then N workers start at once and the clock runs until
every inbox row is replied. Printed with the figures: the CPU each process used in that
window (workers, Postgres, Chroma, the stub, the rest of the machine) and the correctness
checks: each message replied once, and no agent ever had two turns in flight (seen by the
stub LLM, which reads the agent and message number from each request, and afterwards in the
`messages` table, where one agent's turns must not interleave). Usage:

    python bench/workers.py                    # 1, 2 and 4 workers; 1,000 messages, 500 agents
    python bench/workers.py --workers 1,2,4,8 --messages 3000 --json
    python bench/workers.py --profile          # then one worker under cProfile, with SQL counts
    python bench/workers.py --workers 2 --kill 10 --lease 5   # a worker dies mid-run

Needs a PostgreSQL server that takes `--pg` (trust auth; the database `--db`, by default
named after the process, is created and dropped). The stub answers at once (`--llm-delay`
to make it slower): a worker's throughput is then bounded by its CPU, which is what
scale-out is about on a machine with few cores. Each worker gets its own model name
(openai/stub-w<i>), so the stub counts every worker's turns.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pstats
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"
DB = f"botmem_bench_workers_{os.getpid()}"
"""Per run, so two runs on one server never drop each other's database."""
TICK = os.sysconf("SC_CLK_TCK")
POLL = 0.2
"""Seconds between the bench's looks at the inbox (one query each)."""
STALL = 90.0
"""A run with no newly replied message for this long is given up."""
MESSAGE = re.compile(r"(agent-\d+) message (\d+)\b")
LEADER_LINE = "now runs the scheduler and the indexer"
READY_LINE = "sharing the database as"
"""...and when it is started (imports, database, LLM client: ready to claim work)."""
"""What botmem/workers.py logs when a process becomes the leader."""


# --- the stub LLM (its own process: `workers.py --stub`) ----------------------------------


class Tracker:
    """Answers like bench/stub_llm.py (a memory tool call, then a reply) and checks each agent's
    turns: a turn is open from its first request until its reply is sent."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.open: dict[str, int] = {}
        """Agent -> the message number whose turn is in flight."""
        self.done: dict[str, int] = {}
        """Agent -> the last message number answered."""
        self.replies: dict[tuple[str, int], int] = defaultdict(int)
        self.counts: dict[str, int] = defaultdict(int)
        self.by_model: dict[str, int] = defaultdict(int)
        """Turns started per model name: each worker has its own."""
        self.examples: list[str] = []
        self._n = 0

    def note(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {detail}")

    def respond(self, body: dict[str, Any]) -> Any:
        from botmem.testing.openai_server import delayed, text, tool_call

        self.counts["requests"] += 1
        if not body.get("tools"):
            self.counts["summaries"] += 1
            return delayed(text("The person chatted about their day."), self.delay)
        messages = body["messages"]
        said = next((m for m in reversed(messages) if m.get("role") == "user"), None)
        found = MESSAGE.search(str(said.get("content", ""))) if said else None
        if found is None:
            self.note("unknown", str(said)[:200])
            return delayed(text("ok"), self.delay)
        agent, n = found.group(1), int(found.group(2))
        if messages[-1].get("role") == "tool":  # the turn's second step: it ends here
            if self.open.get(agent) != n:
                self.note("unmatched", f"{agent} message {n} ended, open: {self.open.get(agent)}")
            self.open.pop(agent, None)
            self.replies[agent, n] += 1
            if self.replies[agent, n] > 1:
                self.note("duplicate", f"{agent} message {n} answered again")
            self.done[agent] = max(n, self.done.get(agent, -1))
            return delayed(text(f"Noted, {agent} message {n} done."), self.delay)
        # the turn's first step
        self.counts["turns"] += 1
        self.by_model[str(body.get("model"))] += 1
        running = self.open.get(agent)
        if running is not None and running != n:
            self.note("overlap", f"{agent} message {n} started while message {running} runs")
        elif running == n:
            self.note("same_twice", f"{agent} message {n} started again before it ended")
        if n != self.done.get(agent, -1) + 1:
            self.note("out_of_order", f"{agent} message {n} after {self.done.get(agent)}")
        if n > 0 and f"{agent} message {n - 1} done" not in json.dumps(messages):
            self.note("stale", f"{agent} message {n}: the previous reply is not in the prompt")
        self.open[agent] = n
        self._n += 1
        if self._n % 2:
            return delayed(tool_call("conversation_search", {"query": f"topic {n}"}), self.delay)
        content = f"fact {self._n} about {agent}"
        call = tool_call("core_memory_append", {"label": "human", "content": content})
        return delayed(call, self.delay)

    def stats(self) -> dict[str, Any]:
        return {
            **self.counts,
            "still_open": len(self.open),
            "answered": len(self.replies),
            "turns_by_model": dict(sorted(self.by_model.items())),
            "examples": self.examples,
        }


async def serve_stub(delay: float) -> None:
    """Serve until stdin closes; each line read on stdin prints the tracker's stats."""
    from botmem.testing.openai_server import FakeOpenAIServer

    tracker = Tracker(delay)
    loop = asyncio.get_running_loop()
    async with FakeOpenAIServer(tracker.respond, models=("stub",)) as server:
        print(server.base_url, flush=True)
        while await loop.run_in_executor(None, sys.stdin.readline):
            print(json.dumps(tracker.stats()), flush=True)


class Stub:
    def __init__(self, delay: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--stub", "--llm-delay", str(delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url:
            raise SystemExit("the stub LLM did not start")

    def stats(self) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        result: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return result

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        stop(self.proc)


# --- processes and their CPU ------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process (not its children), None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def postgres_cpu(db: str) -> dict[int, tuple[str, float]]:
    """pid -> (role, CPU s) of the Postgres server's processes: "backend" for connections to
    `db`, "server" for its own processes (WAL writer, checkpointer...); other databases'
    backends are left out."""
    found: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        connected = "(" in title or "[local]" in title  # "... user db 127.0.0.1(port) idle"
        if connected and f" {db} " not in f" {title} ":
            continue
        seconds = cpu_seconds(int(entry.name))
        if seconds is not None:
            found[int(entry.name)] = ("backend" if connected else "server", seconds)
    return found


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return total - idle, total


@dataclass
class CpuSample:
    at: float
    workers: list[float | None]
    postgres: dict[int, tuple[str, float]]
    stub: float | None
    chroma: float | None
    bench: float
    machine: tuple[int, int]


def sample(
    workers: list[subprocess.Popen[bytes]], stub: Stub, chroma: subprocess.Popen[bytes], db: str
) -> CpuSample:
    times = os.times()
    return CpuSample(
        time.perf_counter(),
        [cpu_seconds(w.pid) for w in workers],
        postgres_cpu(db),
        cpu_seconds(stub.proc.pid),
        cpu_seconds(chroma.pid),
        times.user + times.system,
        machine_ticks(),
    )


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def stop_all(procs: list[subprocess.Popen[Any]], timeout: float = 30) -> list[int]:
    """SIGINT to every process at once (a clean exit, as Ctrl-C), then wait for each."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return [proc.returncode for proc in procs]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_chroma(path: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    chroma = str(Path(sys.executable).with_name("chroma"))
    proc = subprocess.Popen(
        [chroma, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1).close()
            return proc, url
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    stop(proc)
    raise SystemExit(f"chroma did not start:\n{log.read_text()[-2000:]}")


# --- the database -----------------------------------------------------------------------


def raw_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def recreate_database(server: str, db: str, *, drop_only: bool = False) -> None:
    import asyncpg

    conn = await asyncpg.connect(raw_dsn(f"{server}/postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        if not drop_only:
            await conn.execute(f'CREATE DATABASE "{db}"')
    finally:
        await conn.close()


def agent_name(i: int) -> str:
    return f"agent-{i}"


async def feed(url: str, agents: int, total: int) -> None:
    """Migrate, then store `total` messages round-robin over the agents, as a gateway would:
    every agent's message 0, then every agent's message 1... (ids keep each agent's order)."""
    from botmem.events import InboundMessage
    from botmem.stores.memory_vectors import MemoryVectorIndex
    from botmem.stores.sql import open_sql_stores
    from botmem.stores.sql.engine import open_database
    from botmem.stores.sql.migrations import migrate

    db = open_database(url)
    try:
        await migrate(db)
    finally:
        await db.close()
    stores = await open_sql_stores(url, vectors=MemoryVectorIndex())
    try:
        rounds = -(-total // agents)
        for n in range(rounds):
            batch = [
                InboundMessage(
                    source="console",
                    message_id=f"{agent_name(a)}-{n}",
                    agent_key=f"console:{agent_name(a)}",
                    text=f"{agent_name(a)} message {n}: how was your day, and what did I say?",
                    user_id=agent_name(a),
                    user_name=agent_name(a),
                    kind="user",
                )
                for a in range(agents)
                if n * agents + a < total
            ]
            for start in range(0, len(batch), 10):  # the pool's size, in parallel
                chunk = batch[start : start + 10]
                ids = await asyncio.gather(*(stores.inbox.add(m) for m in chunk))
                if None in ids:
                    raise SystemExit("a message was refused as a duplicate: is the database new?")
    finally:
        await stores.aclose()


async def progress(conn: Any) -> tuple[int, int, int]:
    """(done, failed, total) rows of the inbox: one query."""
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE status IN ('replied', 'delivered')) AS done,"
        " count(*) FILTER (WHERE status = 'failed') AS failed, count(*) AS total FROM inbox"
    )
    return row["done"], row["failed"], row["total"]


async def transactions(conn: Any, db: str) -> int:
    """Transactions committed or rolled back in `db` so far (every read is one, too)."""
    row = await conn.fetchrow(
        "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = $1", db
    )
    return int(row["n"])


async def check_database(conn: Any, total: int) -> dict[str, Any]:
    """What the inbox and the messages table say about how each message was handled."""
    statuses = dict(await conn.fetch("SELECT status, count(*) FROM inbox GROUP BY status"))
    attempts = dict(await conn.fetch("SELECT attempts, count(*) FROM inbox GROUP BY attempts"))
    rows = await conn.fetch(
        "SELECT agent_key, turn_id, role FROM messages WHERE turn_id IS NOT NULL"
        " ORDER BY agent_key, id"
    )
    inbox_of = dict(await conn.fetch("SELECT id, agent_key FROM inbox"))
    interleaved = backwards = wrong_agent = 0
    users: dict[int, int] = defaultdict(int)
    seen: dict[str, set[int]] = defaultdict(set)
    last: dict[str, int] = {}
    examples: list[str] = []
    for row in rows:
        agent, turn = row["agent_key"], row["turn_id"]
        if row["role"] == "user":
            users[turn] += 1
        if inbox_of.get(turn) != agent:
            wrong_agent += 1
        previous = last.get(agent)
        if previous is not None and turn != previous:
            if turn in seen[agent]:
                interleaved += 1  # a turn came back after another one's messages
                if len(examples) < 5:
                    examples.append(f"{agent}: turn {turn} resumed after turn {previous}")
            elif turn < previous:
                backwards += 1  # a later message's turn ran first
                if len(examples) < 5:
                    examples.append(f"{agent}: turn {turn} after turn {previous}")
        seen[agent].add(turn)
        last[agent] = turn
    return {
        "statuses": {str(k): v for k, v in statuses.items()},
        "attempts": {str(k): v for k, v in sorted(attempts.items())},
        "turns_stored": len(users),
        "turns_missing": total - len(users),
        "user_message_twice": sum(1 for c in users.values() if c > 1),
        "interleaved": interleaved,
        "out_of_order": backwards,
        "wrong_agent": wrong_agent,
        "examples": examples,
    }


# --- one run ------------------------------------------------------------------------------


def write_config(
    path: Path, model: str, stub_url: str, url: str, chroma_url: str, args: argparse.Namespace
) -> None:
    lines = [
        "[llm]",
        f'model = "openai/{model}"  # the stub counts each worker\'s turns by model name',
        f'api_base = "{stub_url}"',
        "direct_http = true",
        "max_retries = 0",
        "[storage]",
        f'data_dir = "{path.parent / "data"}"',
        f'database_url = "{url}"',
        f'chroma_url = "{chroma_url}"',
        "vector_cache = 0  # several processes write to the same Chroma",
        "[runtime]",
        f"max_concurrent_turns = {args.concurrency}",
        'log_level = "INFO"',
        "shutdown_grace = 5",
        "[limits]  # one very busy bot: measure turns, not the per-person limits",
        "messages_per_minute = 0",
        "tokens_per_hour = 0",
        "tokens_per_day = 0",
    ]
    if args.embedder == "stub":  # the stub's hashed vectors instead of MiniLM on the CPU
        lines += [
            "[embeddings]",
            'provider = "litellm"',
            'model = "openai/stub-embedding"',
            f'api_base = "{stub_url}"',
            'api_key_env = "BOTMEM_BENCH_KEY"',
            "dimensions = 64",
        ]
    workers = {"lease_seconds": args.lease, "poll_interval": args.poll}
    if any(v is not None for v in workers.values()):
        lines.append("[workers]")
        lines += [f"{k} = {v}" for k, v in workers.items() if v is not None]
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Result:
    workers: int
    messages: int
    seconds: float = 0.0
    first_reply: float = 0.0
    steady: float = 0.0
    cpu: dict[str, Any] = field(default_factory=dict)
    stub: dict[str, Any] = field(default_factory=dict)
    db: dict[str, Any] = field(default_factory=dict)
    died: list[int] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    failed: int = 0
    stop_seconds: float = 0.0
    sql: dict[str, int] = field(default_factory=dict)
    """Statements (by text), transactions, leases and claims of all workers (--count-sql)."""
    ready: float = 0.0
    """Seconds until the last worker was started and claiming."""
    leaders: list[int] = field(default_factory=list)
    """Workers that logged taking the leader lease (scheduler and indexer)."""

    def turns_of(self, worker: int) -> int:
        return int(self.stub.get("turns_by_model", {}).get(f"stub-w{worker}", 0))

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def problems(self) -> int:
        s, d = self.stub, self.db
        return (
            sum(s.get(k, 0) for k in ("overlap", "duplicate", "out_of_order", "stale"))
            # a turn cut off by a dead worker runs again, from its stored steps: expected
            + (0 if self.died else s.get("same_twice", 0))
            + sum(d.get(k, 0) for k in ("interleaved", "out_of_order", "wrong_agent"))
            + d.get("turns_missing", 0)
            + d.get("user_message_twice", 0)
            + self.failed
        )


def cpu_between(a: CpuSample, b: CpuSample) -> dict[str, Any]:
    workers = [(y or 0.0) for y in b.workers]  # workers started at a: all their CPU counts
    pg = {"backend": 0.0, "server": 0.0}
    for pid, (role, seconds) in b.postgres.items():
        pg[role] += seconds - a.postgres.get(pid, (role, 0.0))[1]
    busy = (b.machine[0] - a.machine[0]) / TICK
    parts = {
        "workers": sum(workers),
        "postgres": pg["backend"] + pg["server"],
        "chroma": (b.chroma or 0.0) - (a.chroma or 0.0),
        "stub": (b.stub or 0.0) - (a.stub or 0.0),
        "bench": b.bench - a.bench,
    }
    return {
        "per_worker": workers,
        **parts,
        "postgres_backends": pg["backend"],
        "machine_busy": busy,
        "other": max(0.0, busy - sum(parts.values())),
        "busy_cores": busy / (b.at - a.at),
    }


async def run(count: int, args: argparse.Namespace, profile: Path | None = None) -> Result:
    import asyncpg

    messages = args.messages if profile is None else args.profile_messages
    result = Result(count, messages)
    url = f"{args.pg}/{args.db}"
    with tempfile.TemporaryDirectory(prefix="botmem-workers-") as tmp:
        tmpdir = Path(tmp)
        await recreate_database(args.pg, args.db)
        chroma, chroma_url = start_chroma(tmpdir / "chroma", tmpdir / "chroma.log")
        stub = Stub(args.llm_delay)
        workers: list[subprocess.Popen[bytes]] = []
        conn = None
        try:
            configs = [tmpdir / f"conf{i}" / "config.toml" for i in range(count)]
            for i, config in enumerate(configs):
                config.parent.mkdir()
                write_config(config, f"stub-w{i}", stub.url, url, chroma_url, args)
            started = time.perf_counter()
            await feed(url, args.agents, messages)
            say(
                f"  {count} worker(s): {messages} messages stored in "
                f"{time.perf_counter() - started:.1f} s; starting the workers"
            )
            conn = await asyncpg.connect(raw_dsn(url))
            env = {
                **os.environ,
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "BOTMEM_BENCH_KEY": "no-key",
            }
            command = shlex.split(args.command)
            xacts = await transactions(conn, args.db)
            before = sample([], stub, chroma, args.db)
            counted = [tmpdir / f"worker{i}.prof" for i in range(count)]
            if profile is not None:
                counted[0] = profile
            for i in range(count):
                log = (tmpdir / f"worker{i}.log").open("wb")
                run_this = command
                if profile is not None:
                    run_this = instrumented(command, "profile", counted[i])
                elif args.count_sql:
                    run_this = instrumented(command, "count", counted[i])
                workers.append(
                    subprocess.Popen(
                        [*run_this, "--config", str(configs[i])],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                        cwd=tmpdir,
                    )
                )
            at_10 = at_90 = None
            ready: dict[int, tuple[float, float]] = {}  # worker -> (seconds, CPU s) to ready
            last_done, last_change = 0, time.perf_counter()
            kill_at = before.at + args.kill if args.kill and count > 1 else None
            while True:
                await asyncio.sleep(POLL)
                done, failed, total = await progress(conn)
                now = time.perf_counter()
                if kill_at is not None and now >= kill_at:
                    say(f"  killing worker 0 (SIGKILL) at {done}/{total} replied")
                    workers[0].kill()
                    kill_at = None
                if done and not result.first_reply:
                    result.first_reply = now - before.at
                for i in set(range(count)) - set(ready):
                    log_text = (tmpdir / f"worker{i}.log").read_text(errors="replace")
                    if READY_LINE in log_text:
                        ready[i] = (now - before.at, cpu_seconds(workers[i].pid) or 0.0)
                if at_10 is None and done >= 0.1 * total:
                    at_10 = (now, done)
                if at_90 is None and done >= 0.9 * total:
                    at_90 = (now, done)
                if done != last_done:
                    last_done, last_change = done, now
                dead = [i for i, w in enumerate(workers) if w.poll() is not None]
                if done + failed >= total:
                    after = sample(workers, stub, chroma, args.db)
                    break
                if len(dead) == count or now - last_change > STALL:
                    logs = "\n".join(
                        f"--- worker {i} (exit {w.poll()}):\n"
                        + (tmpdir / f"worker{i}.log").read_text(errors="replace")[-3000:]
                        for i, w in enumerate(workers)
                    )
                    raise SystemExit(
                        f"{count} worker(s): stuck at {done}/{total} replied"
                        f" ({failed} failed, {len(dead)} exited)\n{logs}"
                    )
            result.died = dead
            result.failed = failed
            result.seconds = after.at - before.at
            if at_10 and at_90 and at_90[0] > at_10[0]:
                result.steady = (at_90[1] - at_10[1]) / (at_90[0] - at_10[0])
            result.cpu = cpu_between(before, after)
            result.cpu["startup"] = sum(cpu for _, cpu in ready.values())
            result.ready = max((at for at, _ in ready.values()), default=0.0)
            result.stub = stub.stats()
            stopping = time.perf_counter()
            result.exit_codes = stop_all(workers)
            result.stop_seconds = time.perf_counter() - stopping
            result.sql = sql_counts([Path(f"{path}.sql.json") for path in counted])
            result.leaders = [
                i
                for i in range(count)
                if LEADER_LINE in (tmpdir / f"worker{i}.log").read_text(errors="replace")
            ]
            await asyncio.sleep(0.6)  # backends flush their statistics at most twice a second
            result.db = await check_database(conn, total)
            result.db["transactions"] = await transactions(conn, args.db) - xacts
        finally:
            if conn is not None:
                await conn.close()
            stop_all(workers)
            stub.stop()
            stop(chroma)
            with contextlib.suppress(Exception):
                await recreate_database(args.pg, args.db, drop_only=True)
            if args.keep_logs:
                for i in range(len(workers)):
                    target = Path(args.keep_logs) / f"workers{count}-worker{i}.log"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes((tmpdir / f"worker{i}.log").read_bytes())
    return result


# --- the profile --------------------------------------------------------------------------

INSTRUMENTED = """
import collections, cProfile, json, runpy, sys, time
from sqlalchemy import event
from sqlalchemy.engine import Engine
from botmem.stores.sql.inbox import SqlInboxStore
from botmem.stores.sql.leases import SqlLeaseStore
mode, out, target = sys.argv[1:4]
sys.argv = [target, *sys.argv[4:]]
counts = collections.Counter()
@event.listens_for(Engine, "before_cursor_execute")
def statement(conn, cursor, text, parameters, context, executemany):
    counts[" ".join(text.split())[:100]] += 1
for name in ("begin", "commit", "rollback"):
    event.listen(Engine, name, lambda conn, key=f"({name.upper()})": counts.update([key]))
def outcomes(cls, method, outcome):
    original = getattr(cls, method)
    async def counted(self, *args, **kwargs):
        result = await original(self, *args, **kwargs)
        counts.update(outcome(result))
        return result
    setattr(cls, method, counted)
outcomes(SqlLeaseStore, "acquire", lambda got: ["[lease taken]" if got else "[lease refused]"])
outcomes(SqlInboxStore, "claimable", lambda keys: ["[claim query]", *["[agent]"] * len(keys)])
profile = cProfile.Profile(time.thread_time) if mode == "profile" else None
if profile:
    profile.enable()  # CPU time of this thread: on a busy machine wall time charges whatever runs
try:
    if target.endswith(".py"):
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
except (SystemExit, KeyboardInterrupt):
    pass
finally:
    if profile:
        profile.disable()
        profile.dump_stats(out)
    with open(out + ".sql.json", "w") as f:
        json.dump(counts.most_common(), f)
"""
"""Runs a module or script counting the SQL statements and transactions it sends (by their
text), lease acquisitions (taken or refused) and claim queries (and the agents they return);
in "profile" mode also under cProfile, timed by CPU (wall time, on a busy machine, charges
whatever runs when the process is descheduled, e.g. socket sends). Output: OUT.sql.json, and
in profile mode OUT (pstats)."""


def instrumented(command: list[str], mode: str, out: Path) -> list[str]:
    """`python [-m] TARGET ARGS` -> the same under INSTRUMENTED."""
    target = command[2:] if command[1] == "-m" else command[1:]
    return [command[0], "-c", INSTRUMENTED, mode, str(out), *target]


def sql_counts(paths: list[Path]) -> dict[str, int]:
    total: dict[str, int] = defaultdict(int)
    for path in paths:
        if path.exists():
            for text, calls in json.loads(path.read_text()):
                total[text] += calls
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))


def sql_lines(counts: dict[str, int], messages: int, top: int) -> list[str]:
    per = {text: calls / messages for text, calls in counts.items()}
    statements = sum(v for text, v in per.items() if text[0] not in "([")
    lines = [
        f"SQL per message: {statements:.1f} statements in {per.get('(BEGIN)', 0):.1f}"
        f" transactions ({per.get('(COMMIT)', 0):.1f} commits, {per.get('(ROLLBACK)', 0):.1f}"
        f" rollbacks: every read is a transaction too); leases taken"
        f" {per.get('[lease taken]', 0):.2f}, refused {per.get('[lease refused]', 0):.2f};"
        f" claim queries {per.get('[claim query]', 0):.2f}, agents returned"
        f" {per.get('[agent]', 0):.2f}"
    ]
    ranked = [(text, v) for text, v in per.items() if text[0] not in "(["][:top]
    lines += [f"  {v:6.2f}  {text}" for text, v in ranked]
    return lines


AREAS = (
    ("sqlalchemy", "SQLAlchemy"),
    ("asyncpg", "asyncpg"),
    ("chromadb", "Chroma client"),
    ("onnxruntime", "onnxruntime (MiniLM)"),
    ("tokenizers", "tokenizers"),
    ("numpy", "numpy"),
    ("httpx", "httpx/httpcore"),
    ("httpcore", "httpx/httpcore"),
    ("pydantic", "pydantic"),
    ("/botmem/", "botmem"),
    ("/asyncio/", "asyncio"),
    ("/json/", "json"),
)


def area(filename: str, function: str) -> str:
    for needle, name in AREAS:
        if needle in filename:
            return name
    if filename == "~":  # a builtin; its name says which extension it belongs to
        for needle, name in AREAS:
            if needle.strip("/") in function:
                return name
        if "socket" in function:
            return "sockets (send/recv syscalls)"
        return "builtins"
    if "site-packages" in filename:
        return "other libraries"
    return "Python stdlib"


def summarize_profile(path: Path, run: Result, top: int = 15) -> list[str]:
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    by_area: dict[str, float] = defaultdict(float)
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        by_area[area(filename, function)] += tottime
    total = sum(by_area.values()) or 1.0
    lines = [
        f"one worker under cProfile: {run.messages} messages in {run.seconds:.1f} s"
        f" ({run.rate:.1f} msg/s with the profiler's overhead); process CPU"
        f" {run.cpu['workers']:.1f} s, of which the main thread {total:.1f} s (the rest:"
        " threads, e.g. MiniLM embedding and Chroma calls, which cProfile does not see)",
        f"Postgres transactions per message (pg_stat_database):"
        f" {run.db.get('transactions', 0) / run.messages:.1f}",
        "CPU self time of the main thread by area:",
    ]
    for name, seconds in sorted(by_area.items(), key=lambda kv: -kv[1]):
        if seconds / total >= 0.01:
            lines.append(f"  {name:24} {seconds:7.2f} s  {100 * seconds / total:5.1f}%")
    if run.sql:
        lines += sql_lines(run.sql, run.messages, 2 * top)
    lines.append(f"top {top} functions by self time:")
    ranked = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    for (filename, line, function), (_cc, calls, tottime, cumtime, _callers) in ranked:
        where = filename.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        lines.append(
            f"  {tottime:6.2f} s {cumtime:7.2f} s cum {calls:>8} calls  {function} ({where}:{line})"
        )
    return lines


# --- output -------------------------------------------------------------------------------


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def table(results: list[Result], cores: int) -> str:
    base = results[0].rate / results[0].workers if results and results[0].workers == 1 else None
    out = [
        f"{'workers':>7} {'seconds':>8} {'msg/s':>7} {'speed-up':>8} {'ready':>6} {'1st reply':>9}"
        f" {'steady/s':>8} {'overlaps':>8} {'problems':>8} {'CPU/worker':>10}"
        f" {'startup CPU':>11} {'ms CPU/msg':>10}",
    ]
    for r in results:
        speedup = f"{r.rate / base:.2f}x" if base else "-"
        overlaps = sum(r.stub.get(k, 0) for k in ("overlap", "same_twice"))
        per_worker = sum(r.cpu["per_worker"]) / r.workers
        startup = r.cpu.get("startup", 0.0)
        per_msg = 1000 * (r.cpu["workers"] - startup) / r.messages
        out.append(
            f"{r.workers:>7} {r.seconds:>8.1f} {r.rate:>7.1f} {speedup:>8} {r.ready:>5.1f}s"
            f" {r.first_reply:>8.1f}s {r.steady:>8.1f} {overlaps:>8} {r.problems():>8}"
            f" {per_worker:>9.1f}s {startup / r.workers:>10.1f}s {per_msg:>10.1f}"
        )
    out.append(
        "(ready: the last worker claiming; steady: msg/s from 10% to 90% replied; startup CPU:"
        " per worker until ready; ms CPU/msg: the workers' CPU after startup per message)"
    )
    out.append("")
    out.append(
        f"CPU seconds in the measured window ({cores} cores; other: the rest of the machine):\n"
        f"{'workers':>7} {'workers':>8} {'postgres':>8} {'chroma':>7} {'stub':>6} {'bench':>6}"
        f" {'other':>6} {'busy cores':>10} {'PG xact/msg':>11}"
        "  each worker: CPU s/turns (* the leader: scheduler and indexer)"
    )
    for r in results:
        c = r.cpu
        each = " ".join(
            f"{s:.1f}/{r.turns_of(i)}{'*' if i in r.leaders else ''}"
            for i, s in enumerate(c["per_worker"])
        )
        xacts = r.db.get("transactions", 0) / r.messages
        out.append(
            f"{r.workers:>7} {c['workers']:>8.1f} {c['postgres']:>8.1f} {c['chroma']:>7.1f}"
            f" {c['stub']:>6.1f} {c['bench']:>6.1f} {c['other']:>6.1f} {c['busy_cores']:>10.2f}"
            f" {xacts:>11.1f}  {each}"
        )
    for r in results:
        if r.sql:
            out.append("")
            out.append(f"{r.workers} worker(s), all together:")
            out += sql_lines(r.sql, r.messages, 12)
    out.append("")
    out.append("correctness (stub: as the LLM saw the requests; db: the inbox and messages):")
    for r in results:
        s, d = r.stub, r.db
        out.append(
            f"  {r.workers} worker(s): inbox {d['statuses']}, attempts {d['attempts']};"
            f" stub: turns {s.get('turns', 0)}, overlaps {s.get('overlap', 0)},"
            f" duplicate replies {s.get('duplicate', 0)}, same turn twice {s.get('same_twice', 0)},"
            f" out of order {s.get('out_of_order', 0)}, stale prompts {s.get('stale', 0)},"
            f" unmatched {s.get('unmatched', 0)}; db: turns stored {d['turns_stored']}"
            f" (missing {d['turns_missing']}), interleaved {d['interleaved']},"
            f" out of order {d['out_of_order']}, user message twice {d['user_message_twice']};"
            f" workers exited early {r.died or 'none'}, exit codes {r.exit_codes}"
            f" ({r.stop_seconds:.1f} s to stop)"
        )
        for example in [*s.get("examples", []), *d.get("examples", [])][:5]:
            out.append(f"      {example}")
    return "\n".join(out)


def as_json(results: list[Result]) -> dict[str, Any]:
    return {
        "runs": [
            {
                "workers": r.workers,
                "messages": r.messages,
                "seconds": round(r.seconds, 2),
                "msg_per_s": round(r.rate, 1),
                "first_reply_s": round(r.first_reply, 2),
                "ready_s": round(r.ready, 2),
                "steady_msg_per_s": round(r.steady, 1),
                "problems": r.problems(),
                "cpu": {
                    k: ([round(x, 2) for x in v] if isinstance(v, list) else round(v, 2))
                    for k, v in r.cpu.items()
                },
                "stub": {k: v for k, v in r.stub.items() if k != "examples"},
                "db": {k: v for k, v in r.db.items() if k != "examples"},
                "exited_early": r.died,
                "exit_codes": r.exit_codes,
                "stop_s": round(r.stop_seconds, 2),
                "leaders": r.leaders,
                "sql_per_message": {k: round(v / r.messages, 3) for k, v in r.sql.items()},
            }
            for r in results
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4", help="worker counts to run (default 1,2,4)")
    parser.add_argument("--agents", type=int, default=500, help="(default 500)")
    parser.add_argument(
        "--messages",
        type=int,
        default=1000,
        help="in all, round-robin over the agents (default 1000: 2 per agent, so that each"
        " agent's order is checked)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object, no table")
    parser.add_argument("--pg", default=PG, help=f"the PostgreSQL server (default {PG})")
    parser.add_argument("--db", default=DB, help=f"database to create and drop (default {DB})")
    parser.add_argument(
        "--command",
        default=f"{shlex.quote(sys.executable)} -m botmem.cli worker",
        help="the worker command; --config PATH is appended",
    )
    parser.add_argument(
        "--embedder",
        choices=("local", "stub"),
        default="local",
        help="local: MiniLM in each worker, as shipped; stub: the stub's vectors",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="[runtime] max_concurrent_turns of each worker (default 16)",
    )
    parser.add_argument("--lease", type=float, help="[workers] lease_seconds (default: unset)")
    parser.add_argument("--poll", type=float, help="[workers] poll_interval (default: unset)")
    parser.add_argument("--llm-delay", type=float, default=0.0, help="seconds per LLM answer")
    parser.add_argument(
        "--kill",
        type=float,
        metavar="S",
        help="SIGKILL worker 0 S seconds in (runs with 2+ workers): its agents must be taken"
        " over once their leases run out (see --lease)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="then one worker under cProfile (--profile-messages messages)",
    )
    parser.add_argument("--profile-messages", type=int, default=1000)
    parser.add_argument(
        "--count-sql",
        action="store_true",
        help="count each worker's SQL statements, transactions, leases and claims (a little"
        " slower)",
    )
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the workers' logs here")
    parser.add_argument("--stub", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stub:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_stub(args.llm_delay))
        return
    counts = [int(n) for n in args.workers.split(",")]
    cores = os.cpu_count() or 1
    say(f"{args.messages} messages of {args.agents} agents; workers {counts}; {cores} cores")
    results = []
    for count in counts:
        result = asyncio.run(run(count, args))
        say(f"  {count} worker(s): {result.seconds:.1f} s, {result.rate:.1f} msg/s")
        results.append(result)
    profile_lines: list[str] = []
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "worker.prof"
            profiled = asyncio.run(run(1, args, profile=path))
            deadline = time.monotonic() + 10
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            if path.exists():
                profile_lines = summarize_profile(path, profiled)
                if args.keep_logs:
                    for kept in (path, Path(f"{path}.sql.json")):
                        if kept.exists():
                            (Path(args.keep_logs) / kept.name).write_bytes(kept.read_bytes())
            else:
                profile_lines = ["the profiled worker wrote no profile (did it exit cleanly?)"]
    if args.json:
        print(json.dumps({**as_json(results), "profile": profile_lines}))
        return
    print(table(results, cores))
    if profile_lines:
        print()
        print("\n".join(profile_lines))


if __name__ == "__main__":
    main()
