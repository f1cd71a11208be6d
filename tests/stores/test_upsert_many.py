"""`upsert_many` (the indexer's one call for many agents) keeps every agent's rows its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from botmem.stores.base import VectorIndex
from botmem.stores.chroma import ChromaVectorIndex
from botmem.stores.memory_vectors import MemoryVectorIndex
from botmem.stores.vector_cache import CachedVectorIndex


def unit(*values: float) -> np.ndarray:
    v = np.asarray([*values, 0.0, 0.0][:3], dtype=np.float32)
    return (v / np.linalg.norm(v)).reshape(1, -1)


@pytest.fixture(params=["memory", "chroma", "cached chroma"])
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorIndex]:
    opened: VectorIndex
    if request.param == "memory":
        opened = MemoryVectorIndex()
    else:  # 4 shards: several agents share a shard, others do not
        opened = ChromaVectorIndex.persistent(tmp_path / "chroma", shards=4)
        if request.param == "cached chroma":
            opened = CachedVectorIndex(opened)
    yield opened
    await opened.aclose()


async def test_rows_of_many_agents_land_with_their_agent(index: VectorIndex) -> None:
    agents = [f"agent{n}" for n in range(12)]
    await index.upsert("m", "agent0", ["old"], unit(0, 1))  # cached before the batch
    assert [i for i, _ in await index.query("m", "agent0", unit(0, 1), limit=5)] == ["old"]
    keys = [(agent, "1") for agent in agents] + [(agent, "2") for agent in agents]
    vectors = np.vstack([unit(1, 0)] * len(agents) + [unit(0, 1)] * len(agents))

    await index.upsert_many("m", keys, vectors)

    for agent in agents:
        found = [i for i, _ in await index.query("m", agent, unit(1, 0.1), limit=5)]
        expected = ["1", "old", "2"] if agent == "agent0" else ["1", "2"]
        assert sorted(found) == sorted(expected)
        assert found[0] == "1"


async def test_an_empty_batch_is_nothing(index: VectorIndex) -> None:
    await index.upsert_many("m", [], np.zeros((0, 3), dtype=np.float32))
    assert await index.query("m", "agent0", unit(1, 0), limit=5) == []
