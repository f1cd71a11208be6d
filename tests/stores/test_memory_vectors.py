"""MemoryVectorIndex: the VectorIndex used by tests and when no persistent index is set."""

from __future__ import annotations

import numpy as np
import pytest

from botmem.stores.memory_vectors import MemoryVectorIndex


def vectors(*rows: list[float]) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


async def test_query_returns_nearest_first_with_cosine_distance() -> None:
    index = MemoryVectorIndex()
    await index.upsert("passages", "a", ["x", "y", "z"], vectors([1, 0], [0, 1], [3, 3]))
    found = await index.query("passages", "a", vectors([2, 0.1]), limit=3)
    assert [i for i, _ in found] == ["x", "z", "y"]
    cosine_x = 2 / np.hypot(2, 0.1)
    assert found[0][1] == pytest.approx(1 - cosine_x, abs=1e-6)
    assert found[1][1] == pytest.approx(1 - (2 + 0.1) / (np.hypot(2, 0.1) * np.sqrt(2)), abs=1e-6)
    assert await index.query("passages", "a", vectors([1, 0])[0], limit=1) == [
        ("x", pytest.approx(0.0, abs=1e-6))
    ]
    assert await index.query("passages", "a", vectors([1, 0]), limit=0) == []


async def test_agents_and_spaces_are_isolated() -> None:
    index = MemoryVectorIndex()
    await index.upsert("passages", "a", ["1"], vectors([1, 0]))
    await index.upsert("messages", "a", ["1"], vectors([0, 1]))
    await index.upsert("passages", "b", ["2"], vectors([1, 0]))
    assert [i for i, _ in await index.query("passages", "b", vectors([1, 0]), limit=9)] == ["2"]
    [(_, distance)] = await index.query("messages", "a", vectors([1, 0]), limit=9)
    assert distance == pytest.approx(1.0)
    assert await index.query("passages", "c", vectors([1, 0]), limit=9) == []


async def test_upsert_replaces_and_delete_removes() -> None:
    index = MemoryVectorIndex()
    await index.upsert("passages", "a", ["1", "2"], vectors([1, 0], [0, 1]))
    await index.upsert("passages", "a", ["1"], vectors([0, 1]))
    found = await index.query("passages", "a", vectors([0, 1]), limit=9)
    assert sorted(i for i, _ in found) == ["1", "2"]
    assert all(d == pytest.approx(0.0, abs=1e-6) for _, d in found)
    await index.delete("passages", "a", ["1", "missing"])
    await index.delete("passages", "nobody", ["1"])
    assert [i for i, _ in await index.query("passages", "a", vectors([0, 1]), limit=9)] == ["2"]
    await index.upsert("passages", "a", [], np.empty((0, 2), dtype=np.float32))
    with pytest.raises(ValueError):
        await index.upsert("passages", "a", ["1", "2"], vectors([1, 0]))


async def test_delete_agent_drops_every_space_of_that_agent_only() -> None:
    index = MemoryVectorIndex()
    for space in ("passages", "messages"):
        await index.upsert(space, "a", ["1"], vectors([1, 0]))
        await index.upsert(space, "b", ["1"], vectors([1, 0]))
    await index.delete_agent("a")
    for space in ("passages", "messages"):
        assert await index.query(space, "a", vectors([1, 0]), limit=9) == []
        assert len(await index.query(space, "b", vectors([1, 0]), limit=9)) == 1
    await index.aclose()
