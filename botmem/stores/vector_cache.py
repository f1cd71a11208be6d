"""A read-through RAM cache in front of a VectorIndex, for agents searched recently.

A search embeds the query (~9 ms) and then asks the index; chroma answers a filtered query in
~5 ms even for an agent with a few hundred vectors. Brute force over those vectors in numpy
takes well under a millisecond, so recently searched agents are kept in RAM (least recently
used dropped first, bounded by a total number of vectors). Writes go to the index first, then
into the cached copy, so the cache never holds what the index does not.

One process only: another process writing to the same index is not seen by this cache. Run
several workers with `vector_cache = 0` (or one writer per agent).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from botmem.embeddings.base import Vectors
from botmem.stores.base import VectorIndex, rows_by_agent
from botmem.types import AgentKey

Partition = tuple[str, AgentKey]


class CachedVectorIndex:
    def __init__(self, inner: VectorIndex, max_vectors: int = 50_000):
        self._inner = inner
        self._max_vectors = max_vectors
        self._cache: OrderedDict[Partition, tuple[list[str], Vectors]] = OrderedDict()
        self._size = 0

    async def upsert(
        self, space: str, agent_key: AgentKey, ids: Sequence[str], vectors: Vectors
    ) -> None:
        await self._inner.upsert(space, agent_key, ids, vectors)
        cached = self._take((space, agent_key))
        if cached is not None:
            self._put((space, agent_key), *_merged(cached, list(ids), _rows(vectors)))

    async def upsert_many(
        self, space: str, keys: Sequence[tuple[AgentKey, str]], vectors: Vectors
    ) -> None:
        await self._inner.upsert_many(space, keys, vectors)
        for agent_key, rows in rows_by_agent(keys).items():
            cached = self._take((space, agent_key))
            if cached is not None:
                ids = [keys[r][1] for r in rows]
                self._put((space, agent_key), *_merged(cached, ids, _rows(vectors[rows])))

    async def query(
        self, space: str, agent_key: AgentKey, vector: Vectors, *, limit: int
    ) -> list[tuple[str, float]]:
        key = (space, agent_key)
        cached = self._take(key)
        if cached is None:
            cached = await self._inner.vectors(space, agent_key)
        self._put(key, *cached)
        ids, matrix = cached
        if not ids or limit <= 0:
            return []
        similarity = matrix @ _rows(vector)[0]
        top = np.argsort(-similarity)[:limit]
        return [(ids[i], max(0.0, 1.0 - float(similarity[i]))) for i in top]

    async def vectors(self, space: str, agent_key: AgentKey) -> tuple[list[str], Vectors]:
        return await self._inner.vectors(space, agent_key)

    async def delete(self, space: str, agent_key: AgentKey, ids: Sequence[str]) -> None:
        await self._inner.delete(space, agent_key, ids)
        self._take((space, agent_key))

    async def delete_agent(self, agent_key: AgentKey) -> None:
        await self._inner.delete_agent(agent_key)
        for key in [k for k in self._cache if k[1] == agent_key]:
            self._take(key)

    async def aclose(self) -> None:
        self._cache.clear()
        self._size = 0
        await self._inner.aclose()

    def _take(self, key: Partition) -> tuple[list[str], Vectors] | None:
        entry = self._cache.pop(key, None)
        if entry is not None:
            self._size -= len(entry[0])
        return entry

    def _put(self, key: Partition, ids: list[str], matrix: Vectors) -> None:
        if len(ids) > self._max_vectors:
            return
        self._cache[key] = (ids, matrix)
        self._size += len(ids)
        while self._size > self._max_vectors:
            _key, (old_ids, _matrix) = self._cache.popitem(last=False)
            self._size -= len(old_ids)


def _rows(vectors: Vectors) -> Vectors:
    return np.asarray(vectors, dtype=np.float32).reshape(-1, vectors.shape[-1])


def _merged(
    cached: tuple[list[str], Vectors], ids: list[str], rows: Vectors
) -> tuple[list[str], Vectors]:
    """The cached partition with `ids` replaced or added."""
    old_ids, matrix = cached
    position = {item: i for i, item in enumerate(old_ids)}
    matrix = matrix.copy() if len(old_ids) else np.zeros((0, rows.shape[1]), dtype=np.float32)
    new_ids = list(old_ids)
    extra = []
    for row, item in zip(rows, ids, strict=True):
        if item in position:
            matrix[position[item]] = row
        else:
            position[item] = len(new_ids)
            new_ids.append(item)
            extra.append(row)
    if extra:
        matrix = np.vstack([matrix, np.stack(extra)])
    return new_ids, matrix
