"""Vector search at scale through ChromaVectorIndex: many agents, few vectors each.

Random L2-normalised vectors (no model). For each shard count, a fresh embedded index in its own
process (so RSS is that layout's alone): insert `--per-agent` vectors for each of `--agents`
agents (one upsert per agent), then time `--queries` queries (limit 10) of random agents through
the async API; a shard's first query, which loads its index from disk, is reported apart
("cold"), so p50/p95 are steady state. shards=1 is one collection filtered by agent;
shards >= agents approaches a collection per agent (crc32 collisions leave ~63% used). Usage:

    python bench/vector_scale.py [--agents 1000 --per-agent 100 --dims 384 --shards 1,16,64]

Prints a table, then a JSON line for the default shard count (or the fastest one measured).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from botmem.stores.chroma import DEFAULT_SHARDS, ChromaVectorIndex, shard_of

SPACE = "passages"


def _rss_mb() -> float:
    """Resident memory now (Linux), the figure a host would see."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _unit_rows(rng: np.random.Generator, count: int, dims: int) -> np.ndarray:
    rows = rng.standard_normal((count, dims)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


async def _load(index: ChromaVectorIndex, args: argparse.Namespace) -> float:
    """Insert every agent's vectors; returns vectors per second."""
    rng = np.random.default_rng(1)
    start = time.perf_counter()
    for agent in range(args.agents):
        ids = [str(agent * args.per_agent + i) for i in range(args.per_agent)]
        await index.upsert(SPACE, f"bench:{agent}", ids, _unit_rows(rng, args.per_agent, args.dims))
    return args.agents * args.per_agent / (time.perf_counter() - start)


async def _query_ms(
    index: ChromaVectorIndex, args: argparse.Namespace, shards: int
) -> tuple[list[float], list[float]]:
    """(steady, cold) timings: a shard's first query loads its HNSW index from disk."""
    rng = np.random.default_rng(2)
    steady, cold, seen = [], [], set()
    while len(steady) < args.queries:
        agent = f"bench:{rng.integers(args.agents)}"
        vector = _unit_rows(rng, 1, args.dims)
        start = time.perf_counter()
        hits = await index.query(SPACE, agent, vector, limit=10)
        elapsed = (time.perf_counter() - start) * 1000
        assert len(hits) == min(10, args.per_agent), hits
        shard = shard_of(agent, shards)
        (steady if shard in seen else cold).append(elapsed)
        seen.add(shard)
    return steady, cold


async def measure(args: argparse.Namespace, shards: int) -> dict[str, Any]:
    """One layout, measured in this process."""
    with tempfile.TemporaryDirectory() as directory:
        index = ChromaVectorIndex.persistent(Path(directory) / "chroma", shards=shards)
        await index.query(
            SPACE, "warm-up", _unit_rows(np.random.default_rng(0), 1, args.dims), limit=1
        )  # import chromadb and start the engine outside the timings
        rss_empty = _rss_mb()
        insert_per_s = await _load(index, args)
        timings, cold = await _query_ms(index, args, shards)
        rss = _rss_mb()
        await index.aclose()
    quantiles = statistics.quantiles(timings, n=100)
    return {
        "shards": shards,
        "query_p50_ms": round(statistics.median(timings), 2),
        "query_p95_ms": round(quantiles[94], 2),
        "cold_p50_ms": round(statistics.median(cold), 1),
        "insert_per_s": round(insert_per_s),
        "rss_mb": round(rss),
        "rss_data_mb": round(rss - rss_empty),
    }


def _run_isolated(args: argparse.Namespace, shards: int) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--one",
        str(shards),
        "--agents",
        str(args.agents),
        "--per-agent",
        str(args.per_agent),
        "--dims",
        str(args.dims),
        "--queries",
        str(args.queries),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"{args.agents} agents x {args.per_agent} vectors, {args.dims} dims, "
        f"{args.queries} queries (limit 10)"
    )
    print(
        f"{'shards':>7} {'p50 ms':>8} {'p95 ms':>8} {'cold ms':>8} {'insert/s':>9} "
        f"{'RSS MB':>7} {'data MB':>8}"
    )
    for row in rows:
        print(
            f"{row['shards']:>7} {row['query_p50_ms']:>8} {row['query_p95_ms']:>8} "
            f"{row['cold_p50_ms']:>8} "
            f"{row['insert_per_s']:>9} {row['rss_mb']:>7} {row['rss_data_mb']:>8}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--per-agent", type=int, default=100)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--shards",
        default=f"1,16,{DEFAULT_SHARDS},256",
        help="comma-separated shard counts to compare",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(asyncio.run(measure(args, args.one))))
        return
    rows = []
    for shards in (int(part) for part in args.shards.split(",")):
        rows.append(_run_isolated(args, shards))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    _print_table(rows, args)
    chosen = next((row for row in rows if row["shards"] == DEFAULT_SHARDS), None)
    print(json.dumps(chosen or min(rows, key=lambda row: row["query_p95_ms"])))


if __name__ == "__main__":
    main()
