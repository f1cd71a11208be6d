"""CachedVectorIndex answers like the index behind it, and sees its own writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from botmem.stores.chroma import ChromaVectorIndex
from botmem.stores.memory_vectors import MemoryVectorIndex
from botmem.stores.vector_cache import CachedVectorIndex


def _unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return (v / np.linalg.norm(v)).reshape(1, -1)


async def test_same_answers_as_the_index_and_writes_are_seen(tmp_path: Path) -> None:
    inner = ChromaVectorIndex.persistent(tmp_path / "c", shards=1)
    cache = CachedVectorIndex(inner)
    vecs = np.vstack([_unit(1, 0, 0), _unit(0, 1, 0), _unit(1, 1, 0)])
    await cache.upsert("m", "a", ["1", "2", "3"], vecs)
    await cache.upsert("m", "b", ["9"], _unit(1, 0, 0))
    query = _unit(1, 0.1, 0)
    direct = await inner.query("m", "a", query, limit=3)
    cached = await cache.query("m", "a", query, limit=3)
    assert [i for i, _ in cached] == [i for i, _ in direct] == ["1", "3", "2"]
    assert np.allclose([d for _, d in cached], [d for _, d in direct], atol=1e-4)
    await cache.upsert("m", "a", ["4", "2"], np.vstack([_unit(1, 0.1, 0), _unit(-1, 0, 0)]))
    assert [i for i, _ in await cache.query("m", "a", query, limit=2)] == ["4", "1"]
    assert [i for i, _ in await cache.query("m", "a", query, limit=9)][-1] == "2"
    await cache.delete("m", "a", ["4"])
    assert "4" not in [i for i, _ in await cache.query("m", "a", query, limit=9)]
    assert [i for i, _ in await cache.query("m", "b", query, limit=9)] == ["9"]
    await cache.delete_agent("a")
    assert await cache.query("m", "a", query, limit=9) == []
    await cache.aclose()


async def test_the_cache_stays_within_its_bound() -> None:
    inner = MemoryVectorIndex()
    cache = CachedVectorIndex(inner, max_vectors=3)
    for agent in ("a", "b", "c"):
        await inner.upsert("m", agent, ["1", "2"], np.vstack([_unit(1, 0), _unit(0, 1)]))
        assert len(await cache.query("m", agent, _unit(1, 0), limit=5)) == 2
    assert cache._size <= 3 and list(cache._cache) == [("m", "c")]
    assert [i for i, _ in await cache.query("m", "a", _unit(0, 1), limit=1)] == ["2"]
