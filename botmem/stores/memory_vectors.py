"""MemoryVectorIndex: exact nearest neighbours with numpy, kept in process memory.

For tests and for bots without a persistent index. Exact search over one agent's vectors
is a matrix-vector product: fast enough for thousands of items per agent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from botmem.embeddings.base import Vectors
from botmem.stores.base import rows_by_agent
from botmem.types import AgentKey


def _normalised(vectors: Vectors) -> Vectors:
    """Rows scaled to unit length (zero rows stay zero), so a dot product is the cosine."""
    matrix = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1, norms)).astype(np.float32)


class MemoryVectorIndex:
    """Vectors per (space, agent); ids are unique within one such partition."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, AgentKey], dict[str, Vectors]] = {}

    async def upsert(
        self, space: str, agent_key: AgentKey, ids: Sequence[str], vectors: Vectors
    ) -> None:
        rows = _normalised(vectors) if len(ids) else np.empty((0, 0), dtype=np.float32)
        if len(ids) != len(rows):
            raise ValueError(f"{len(ids)} ids but {len(rows)} vectors")
        partition = self._items.setdefault((space, agent_key), {})
        for item_id, row in zip(ids, rows, strict=True):
            partition[item_id] = row

    async def upsert_many(
        self, space: str, keys: Sequence[tuple[AgentKey, str]], vectors: Vectors
    ) -> None:
        for agent_key, rows in rows_by_agent(keys).items():
            await self.upsert(space, agent_key, [keys[r][1] for r in rows], vectors[rows])

    async def query(
        self, space: str, agent_key: AgentKey, vector: Vectors, *, limit: int
    ) -> list[tuple[str, float]]:
        partition = self._items.get((space, agent_key))
        if not partition or limit <= 0:
            return []
        ids = list(partition)
        similarity = np.stack([partition[i] for i in ids]) @ _normalised(vector)[0]
        best = np.argsort(-similarity, kind="stable")[:limit]
        return [(ids[i], float(1.0 - similarity[i])) for i in best]

    async def vectors(self, space: str, agent_key: AgentKey) -> tuple[list[str], Vectors]:
        partition = self._items.get((space, agent_key), {})
        ids = list(partition)
        if not ids:
            return [], np.zeros((0, 0), dtype=np.float32)
        return ids, np.stack([partition[i] for i in ids]).astype(np.float32)

    async def delete(self, space: str, agent_key: AgentKey, ids: Sequence[str]) -> None:
        partition = self._items.get((space, agent_key), {})
        for item_id in ids:
            partition.pop(item_id, None)

    async def delete_agent(self, agent_key: AgentKey) -> None:
        for key in [k for k in self._items if k[1] == agent_key]:
            del self._items[key]

    async def aclose(self) -> None:
        """Nothing to release."""
