"""How fast the local embedder (MiniLMEmbedder, int8 ONNX) embeds short chat lines.

    python bench/embedding_speed.py [--sentences 1000] [--runs 3] [--threads N]

Measures model load time, resident memory the model adds, and sentences per second at
batch 1 (one query at a time, as a search does) and batch 32 (as a backfill does), median of
`--runs`. The sentences are synthetic LoCoMo-like chat lines ("Caroline: ..."), 5-30 words.
Prints a table, then the figures as one JSON line (last line) for scripts.
Target on 2 cores: >= 200 sentences/s batched.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from botmem.embeddings.local import MiniLMEmbedder

SPEAKERS = ["Caroline", "Melanie", "Jon", "Gina", "Tim", "Audrey"]
OPENERS = ["Hey!", "Wow,", "Oh nice,", "Haha,", "Honestly,", "Guess what?", "Thanks!", ""]
CLAUSES = [
    "I went to the {place} with my {kin} last {day}",
    "we finally adopted a {pet} named {name}",
    "I've been painting a lot more since the {event}",
    "my {kin} started a new job at the {place}",
    "did you ever finish that book about {topic}?",
    "I'm thinking about signing up for a {topic} class",
    "the {event} was so much fun, you should have been there",
    "can't believe it's been a year since we moved to the {place}",
    "I ran into {name} at the {place} yesterday",
    "work has been crazy but the {pet} keeps me sane",
]
FILL = {
    "place": ["beach", "museum", "park", "bakery", "library", "studio", "lake house"],
    "kin": ["sister", "kids", "mom", "husband", "best friend", "grandpa"],
    "day": ["weekend", "Friday", "summer", "month", "night"],
    "pet": ["puppy", "cat", "rabbit", "parrot"],
    "name": ["Max", "Luna", "Oliver", "Bella", "Charlie"],
    "event": ["pride parade", "camping trip", "concert", "charity run", "support group"],
    "topic": ["pottery", "astronomy", "self-care", "adoption", "photography"],
}


def chat_lines(count: int, seed: int = 7) -> list[str]:
    """Synthetic chat lines shaped like LoCoMo's: a speaker, 1-2 clauses, 5-30 words."""
    rng = random.Random(seed)

    def clause() -> str:
        template = rng.choice(CLAUSES)
        return template.format(**{key: rng.choice(values) for key, values in FILL.items()})

    lines = []
    for _ in range(count):
        body = " and ".join(clause() for _ in range(rng.choice([1, 1, 2])))
        lines.append(f"{rng.choice(SPEAKERS)}: {rng.choice(OPENERS)} {body}".replace("  ", " "))
    return lines


def rss_mb() -> float:
    """Current resident set size (psutil is not a dependency; /proc is enough on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def median_rate(run: Callable[[], None], items: int, runs: int) -> tuple[float, float]:
    """Median items/s of wall time, and of CPU time, over `runs` timed runs.

    Items per CPU-second shows the cost per core even when other processes share the
    machine (then wall-time rates understate what idle cores would do).
    """
    rates, cpu_rates = [], []
    for _ in range(runs):
        start, cpu = time.perf_counter(), time.process_time()
        run()
        rates.append(items / (time.perf_counter() - start))
        cpu_rates.append(items / max(time.process_time() - cpu, 1e-9))
    return statistics.median(rates), statistics.median(cpu_rates)


def measure(embedder: MiniLMEmbedder, lines: Sequence[str], runs: int) -> dict[str, float]:
    before = rss_mb()
    start = time.perf_counter()
    embedder._load()
    load_s = time.perf_counter() - start
    embedder.embed_sync(lines[:64])  # warm-up: onnxruntime allocates its arenas on first runs
    added_mb = rss_mb() - before
    singles = lines[: max(1, len(lines) // 4)]
    batch1, batch1_cpu = median_rate(
        lambda: [embedder.embed_sync([s]) for s in singles], len(singles), runs
    )
    batch32, batch32_cpu = median_rate(lambda: embedder.embed_sync(lines), len(lines), runs)
    return {
        "load_s": round(load_s, 3),
        "rss_added_mb": round(added_mb, 1),
        "batch1_per_s": round(batch1, 1),
        "batch32_per_s": round(batch32, 1),
        "batch1_per_cpu_s": round(batch1_cpu, 1),
        "batch32_per_cpu_s": round(batch32_cpu, 1),
        "load_average": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    args = parser.parse_args()

    lines = chat_lines(args.sentences)
    embedder = MiniLMEmbedder(threads=args.threads, batch_size=32)
    figures = measure(embedder, lines, args.runs)
    words = statistics.mean(len(line.split()) for line in lines)
    print(f"{embedder!r}: {len(lines)} chat lines, {words:.1f} words on average")
    print(f"{'load':<22}{figures['load_s']:>10.3f} s")
    print(f"{'RSS added':<22}{figures['rss_added_mb']:>10.1f} MB")
    print(f"{'batch 1':<22}{figures['batch1_per_s']:>10.1f} sentences/s")
    print(f"{'batch 32':<22}{figures['batch32_per_s']:>10.1f} sentences/s")
    print(f"{'batch 1 per CPU-s':<22}{figures['batch1_per_cpu_s']:>10.1f} sentences")
    print(f"{'batch 32 per CPU-s':<22}{figures['batch32_per_cpu_s']:>10.1f} sentences")
    print(f"{'load average (1 min)':<22}{figures['load_average']:>10.2f} (other processes)")
    record = {"threads": embedder.threads, "sentences": len(lines), **figures}
    print(json.dumps(record))


if __name__ == "__main__":
    main()
