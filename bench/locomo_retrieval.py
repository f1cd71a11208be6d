"""LoCoMo retrieval benchmark through botmem's own stores and its conversation_search ranking.

    python bench/locomo_retrieval.py ../shared/bench/locomo_dev.json \
        ../shared/bench/locomo_dev_gold.jsonl

Each conversation becomes one agent's recall memory (one message per turn, text
"{speaker}: {text}" plus " [shares {caption}]", the session date as the message time), indexed
by the product's embedder and vector index. Each question is searched with the Retriever the
conversation_search tool uses; results map back to dia_ids and are scored against the gold
evidence. LoCoMo is CC BY-NC 4.0: it stays outside this repository.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botmem.agent.retrieval import Indexer, Retriever
from botmem.embeddings.base import Embedder
from botmem.stores.base import Stores
from botmem.types import Message

KS = (1, 5, 10, 25)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}


def session_time(text: str) -> datetime:
    """'1:56 pm on 8 May, 2023' -> an aware datetime."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def turns(sample: dict[str, Any]) -> list[tuple[str, str, datetime]]:
    """(dia_id, text, time) for every turn, in order."""
    conv = sample["conversation"]
    sessions = sorted(
        (
            int(key.split("_")[1])
            for key in conv
            if key.startswith("session_") and key.count("_") == 1
        ),
    )
    out = []
    for n in sessions:
        start = session_time(conv[f"session_{n}_date_time"])
        for i, turn in enumerate(conv[f"session_{n}"]):
            text = f"{turn['speaker']}: {turn['text']}"
            if turn.get("blip_caption"):
                text += f" [shares {turn['blip_caption']}]"
            out.append((turn["dia_id"], text, start + timedelta(seconds=i)))
    return out


async def ingest(
    stores: Stores, embedder: Embedder, data: list[dict[str, Any]]
) -> tuple[dict[int, str], float, int]:
    """Store and index every conversation; returns message id -> dia_id, seconds, turn count."""
    dia_of: dict[int, str] = {}
    started = time.perf_counter()
    count = 0
    for sample in data:
        agent_key = f"locomo:{sample['sample_id']}"
        await stores.agents.ensure(agent_key)
        items = turns(sample)
        stored = await stores.history.append(
            [Message(agent_key, "user", text, when) for _dia, text, when in items]
        )
        dia_of.update(
            {m.id: dia for m, (dia, _t, _w) in zip(stored, items, strict=True) if m.id is not None}
        )
        count += len(items)
    await Indexer(stores, embedder).index_pending()
    return dia_of, time.perf_counter() - started, count


def score(ranked: list[str], gold: list[str]) -> dict[str, float]:
    gold_set = set(gold)
    result = {f"recall@{k}": len(gold_set & set(ranked[:k])) / len(gold_set) for k in KS}
    result["hit@10"] = float(bool(gold_set & set(ranked[:10])))
    result["all@10"] = float(gold_set <= set(ranked[:10]))
    first = next((i for i, dia in enumerate(ranked) if dia in gold_set), None)
    result["mrr"] = 0.0 if first is None else 1.0 / (first + 1)
    return result


async def evaluate(
    retriever: Retriever, dia_of: dict[int, str], questions: list[dict[str, Any]]
) -> tuple[dict[int, list[dict[str, float]]], list[float]]:
    by_category: dict[int, list[dict[str, float]]] = defaultdict(list)
    latencies = []
    await retriever.search_messages(f"locomo:{questions[0]['sample_id']}", "warm up", limit=25)
    for q in questions:
        started = time.perf_counter()
        found = await retriever.search_messages(f"locomo:{q['sample_id']}", q["question"], limit=25)
        latencies.append((time.perf_counter() - started) * 1000)
        ranked = list(dict.fromkeys(dia_of[m.id] for m in found if m.id in dia_of))
        by_category[q["category"]].append(score(ranked, q["evidence"]))
    return by_category, latencies


def mean(rows: list[dict[str, float]], key: str) -> float:
    return 100 * statistics.fmean(r[key] for r in rows) if rows else 0.0


def report(
    by_category: dict[int, list[dict[str, float]]], latencies: list[float], turns_per_s: float
) -> dict[str, float]:
    keys = [f"recall@{k}" for k in KS] + ["hit@10", "all@10", "mrr"]
    print(f"{'category':14} {'n':>4} " + " ".join(f"{k:>9}" for k in keys))
    for cat in sorted(by_category):
        rows = by_category[cat]
        print(
            f"{CATEGORIES[cat]:14} {len(rows):4} " + " ".join(f"{mean(rows, k):9.1f}" for k in keys)
        )
    main = [r for cat in (1, 2, 3, 4) for r in by_category.get(cat, [])]
    print(f"{'micro 1-4':14} {len(main):4} " + " ".join(f"{mean(main, k):9.1f}" for k in keys))
    p95 = statistics.quantiles(latencies, n=20)[18]
    print(
        f"search p50 {statistics.median(latencies):.1f} ms, p95 {p95:.1f} ms; "
        f"ingest {turns_per_s:.0f} turns/s"
    )
    return {
        "recall@1": round(mean(main, "recall@1"), 1),
        "recall@5": round(mean(main, "recall@5"), 1),
        "recall@10": round(mean(main, "recall@10"), 1),
        "recall@25": round(mean(main, "recall@25"), 1),
        "mrr": round(mean(main, "mrr"), 1),
        "multi_hop_recall@10": round(mean(by_category.get(1, []), "recall@10"), 1),
        "search_p50_ms": round(statistics.median(latencies), 2),
        "search_p95_ms": round(p95, 2),
        "ingest_turns_per_s": round(turns_per_s, 1),
    }


async def run(data_path: Path, gold_path: Path) -> dict[str, float]:
    from botmem.app import build_embedder, open_stores
    from botmem.config import Settings

    data = json.loads(data_path.read_text())
    questions = [json.loads(line) for line in gold_path.read_text().splitlines() if line.strip()]
    questions = [q for q in questions if q["evidence"]]
    with tempfile.TemporaryDirectory() as tmp:
        # The product's own composition: default settings, data under a temporary directory.
        settings = Settings.model_validate({"storage": {"data_dir": tmp}})
        embedder = build_embedder(settings)
        stores = await open_stores(settings, model=embedder.name)
        try:
            dia_of, seconds, count = await ingest(stores, embedder, data)
            retriever = Retriever(stores, embedder, settings.retrieval)
            by_category, latencies = await evaluate(retriever, dia_of, questions)
        finally:
            await stores.aclose()
    print(f"{len(data)} conversations, {count} turns, {len(questions)} questions with evidence")
    return report(by_category, latencies, count / seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description="LoCoMo retrieval through botmem's stores")
    parser.add_argument("data", type=Path)
    parser.add_argument("gold", type=Path)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.data, args.gold))))


if __name__ == "__main__":
    main()
