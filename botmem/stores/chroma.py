"""VectorIndex on chromadb, sharded: the only botmem module that imports chromadb (lazily).

Layout: one collection per (space, shard), named ``botmem_{space}_{shard:03d}``, where
shard = crc32(agent_key) % shards. Every document carries ``{"agent_key": ...}`` and its chroma
id is ``f"{agent_key}|{item_id}"``, so agents sharing a shard can neither see nor overwrite nor
delete each other's items, even when their item ids coincide.

Why shards (measured by bench/vector_scale.py): chroma's local engine answers a filtered query
by reading the matching ids from SQLite and passing them to hnswlib as an allow-list; hnswlib
admits only allowed ids to its result heap, so when one agent owns a small part of a collection
the search walks most of the graph (no brute-force fallback, except for tiny delete-heavy
indexes). Cost grows with the collection size, not with ef_search or M (6k docs: filtered 6-10
ms at ef_search 10, 100 or 400; unfiltered 1-4 ms). Small shards keep it flat; a collection per
agent costs ~1.9 MB RAM each.

Each collection's metadata records ``dimensions``, ``shards`` and (optionally) ``model``: an
index written by another embedding model, or with another shard count, raises StoreError
instead of silently returning wrong or no neighbours.

Several processes may share one index (a chroma server): a collection this client has not
cached is looked up on the server, so spaces and shards created by others are found; a client
that found no collections when it connected re-reads the layout before it creates one (and
adopts the shard count another process may have used meanwhile). A server that cannot be
reached raises StoreError, which botmem treats as transient: the turn waits and tries again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

import numpy as np

from botmem.embeddings.base import Vectors
from botmem.errors import StoreError
from botmem.stores.chroma_layout import PREFIX, ChromaLayout
from botmem.types import AgentKey

if TYPE_CHECKING:
    from chromadb.api.client import Client
    from chromadb.api.models.Collection import Collection

DEFAULT_SHARDS = 16
"""bench/vector_scale.py, 1,000 agents x 100 vectors x 384 dims: 1 collection p95 260 ms;
8 shards p95 16 ms, 343 MB; 16 shards 11 ms, 370 MB; 64 shards 6 ms, 488 MB. Every chroma
call costs ~9 ms whatever its size, so the indexer's batch of 256 messages of 100 agents took
226 ms with 16 shards and 1.2 s with 64 (most of it holding the GIL the turns need). Agents
searched recently are answered from RAM (CachedVectorIndex) either way."""

MAX_SHARDS = 4096
UNAVAILABLE = frozenset({502, 503, 504})
"""HTTP statuses (e.g. from a proxy in front of the server) that mean "try again later"."""
_SPACE = re.compile(r"[a-z0-9][a-z0-9_]{0,62}")
_T = TypeVar("_T")
log = logging.getLogger(__name__)


def shard_of(agent_key: AgentKey, shards: int) -> int:
    """A stable shard number: crc32 is the same in every process (unlike hash())."""
    return zlib.crc32(agent_key.encode()) % shards


def collection_name(space: str, shard: int) -> str:
    return f"{PREFIX}_{space}_{shard:03d}"


def _doc_id(agent_key: AgentKey, item_id: str) -> str:
    return f"{agent_key}|{item_id}"


def _unreachable(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from, says the server was not reached
    (refused, reset, timed out) or was unavailable. chromadb wraps a failed connect in a
    ValueError and an unavailable status in a bare Exception; the httpx error is their cause."""
    import httpx  # a dependency of chromadb, loaded with it

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, httpx.TransportError):
            return True
        if (
            isinstance(current, httpx.HTTPStatusError)
            and current.response.status_code in UNAVAILABLE
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _settings() -> Any:
    """No telemetry, no reset: an index of users' memories must not be wiped by one call."""
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False, allow_reset=False)


def _as_matrix(vectors: Vectors) -> Vectors:
    """Rows of float32; a single vector (1-D) becomes one row."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2:
        raise StoreError(f"vectors must be a 2-D array, got shape {matrix.shape}")
    return matrix


class ChromaVectorIndex:
    """VectorIndex over an embedded (PersistentClient) or remote (HttpClient) chroma.

    The client is created on first use, in a worker thread: importing chromadb takes over a
    second and must not stall startup or the event loop. chroma's Python API is synchronous;
    every call runs through asyncio.to_thread. The Rust engine behind it is safe to call from
    several threads; only our own caches (collections, dimensions) need a lock.
    """

    def __init__(
        self,
        connect: Callable[[], Client],
        *,
        shards: int = DEFAULT_SHARDS,
        model: str | None = None,
        where: str = "chroma",
    ):
        if not 1 <= shards <= MAX_SHARDS:
            raise StoreError(f"shards must be between 1 and {MAX_SHARDS}, got {shards}")
        self._connect = connect
        self._layout = ChromaLayout(shards, model, where)
        self._client: Client | None = None
        self._collections: dict[str, Collection] = {}
        self._lock = threading.Lock()

    @classmethod
    def persistent(
        cls, path: str | Path, *, shards: int = DEFAULT_SHARDS, model: str | None = None
    ) -> ChromaVectorIndex:
        """An embedded index stored under `path` (e.g. data_dir / "chroma")."""
        directory = Path(path)

        def connect() -> Client:
            import chromadb

            directory.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(directory), settings=_settings())
            return cast("Client", client)  # typed as the protocol, which lacks close()

        return cls(connect, shards=shards, model=model, where=str(directory))

    @classmethod
    def http(
        cls, url: str, *, shards: int = DEFAULT_SHARDS, model: str | None = None
    ) -> ChromaVectorIndex:
        """An index on a chroma server, e.g. "http://127.0.0.1:8000" or "https://chroma.lan"."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StoreError(f"chroma url must look like http://host:port, got {url!r}")
        ssl = parts.scheme == "https"
        host = parts.hostname
        port = parts.port or (443 if ssl else 8000)

        def connect() -> Client:
            import chromadb

            client = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=_settings())
            return cast("Client", client)

        return cls(connect, shards=shards, model=model, where=url)

    async def upsert(
        self, space: str, agent_key: AgentKey, ids: Sequence[str], vectors: Vectors
    ) -> None:
        await self._run(self._upsert, space, agent_key, list(ids), _as_matrix(vectors))

    async def upsert_many(
        self, space: str, keys: Sequence[tuple[AgentKey, str]], vectors: Vectors
    ) -> None:
        """One chroma call per shard, not per agent: a call costs ~9 ms whatever its size."""
        await self._run(self._upsert_rows, space, list(keys), _as_matrix(vectors))

    async def query(
        self, space: str, agent_key: AgentKey, vector: Vectors, *, limit: int
    ) -> list[tuple[str, float]]:
        """The agent's nearest ids with cosine distance (1 - cos), nearest first."""
        return await self._run(self._query, space, agent_key, _as_matrix(vector), limit)

    async def vectors(self, space: str, agent_key: AgentKey) -> tuple[list[str], Vectors]:
        return await self._run(self._vectors, space, agent_key)

    async def delete(self, space: str, agent_key: AgentKey, ids: Sequence[str]) -> None:
        await self._run(self._delete, space, agent_key, list(ids))

    async def delete_agent(self, agent_key: AgentKey) -> None:
        await self._run(self._delete_agent, agent_key)

    async def aclose(self) -> None:
        """Release the client (the last user of an embedded index stops its engine)."""
        with self._lock:
            client, self._client = self._client, None
            self._collections.clear()
            self._layout.forget()
        if client is not None:
            await asyncio.to_thread(client.close)

    # --- synchronous parts, run in a worker thread ---

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.to_thread(self._guarded, function, *args)

    def _guarded(self, function: Callable[..., _T], *args: Any) -> _T:
        """chroma's own errors and an unreachable server become StoreError. Imports chromadb
        here, in the worker thread, so the first call does not stall the event loop for the
        second the import takes."""
        from chromadb.errors import ChromaError

        try:
            return function(*args)
        except ChromaError as error:
            raise StoreError(f"vector index {self._layout.where}: {error}") from error
        except Exception as error:
            if not _unreachable(error):
                raise
            detail = f"{type(error).__name__}: {error}"[:300]
            raise StoreError(f"vector index {self._layout.where} unreachable ({detail})") from error

    def _upsert(self, space: str, agent_key: AgentKey, ids: list[str], matrix: Vectors) -> None:
        self._upsert_rows(space, [(agent_key, item_id) for item_id in ids], matrix)

    def _upsert_rows(self, space: str, keys: list[tuple[AgentKey, str]], matrix: Vectors) -> None:
        if len(keys) != len(matrix):
            raise StoreError(f"{len(keys)} ids but {len(matrix)} vectors")
        # Each agent's collection is looked up (from the cache, after the first) rather than
        # its shard computed here: the first write may learn the index's shard count.
        of_agent: dict[AgentKey, Collection] = {}
        by_collection: dict[str, tuple[Collection, list[int]]] = {}
        for row, (agent_key, _) in enumerate(keys):
            collection = of_agent.get(agent_key)
            if collection is None:
                found = self._collection(space, agent_key, matrix.shape[1], create=True)
                assert found is not None
                collection = of_agent[agent_key] = found
            by_collection.setdefault(collection.name, (collection, []))[1].append(row)
        step = self._ensure_client().get_max_batch_size() if keys else 0
        for collection, rows in by_collection.values():
            for start in range(0, len(rows), step):
                batch = rows[start : start + step]
                collection.upsert(
                    ids=[_doc_id(*keys[r]) for r in batch],
                    embeddings=matrix[batch],
                    metadatas=[{"agent_key": keys[r][0]} for r in batch],
                )

    def _query(
        self, space: str, agent_key: AgentKey, matrix: Vectors, limit: int
    ) -> list[tuple[str, float]]:
        if len(matrix) != 1:
            raise StoreError(f"query takes one vector, got {len(matrix)}")
        collection = self._collection(space, agent_key, matrix.shape[1], create=False)
        if collection is None or limit <= 0:
            return []
        # In chroma 1.x, n_results above the number of matching documents returns fewer.
        result = collection.query(
            query_embeddings=matrix,
            n_results=limit,
            where={"agent_key": agent_key},
            include=["distances"],
        )
        prefix = len(_doc_id(agent_key, ""))
        distances = result["distances"] or [[]]
        return [
            (doc_id[prefix:], max(0.0, float(distance)))
            for doc_id, distance in zip(result["ids"][0], distances[0], strict=True)
        ]

    def _vectors(self, space: str, agent_key: AgentKey) -> tuple[list[str], Vectors]:
        collection = self._collection(space, agent_key, None, create=False)
        if collection is None:
            return [], np.zeros((0, 0), dtype=np.float32)
        result = collection.get(where={"agent_key": agent_key}, include=["embeddings"])
        prefix = len(_doc_id(agent_key, ""))
        ids = [doc_id[prefix:] for doc_id in result["ids"]]
        embeddings = result["embeddings"]
        if not ids or embeddings is None:
            return [], np.zeros((0, 0), dtype=np.float32)
        return ids, np.asarray(embeddings, dtype=np.float32)

    def _delete(self, space: str, agent_key: AgentKey, ids: list[str]) -> None:
        collection = self._collection(space, agent_key, None, create=False)
        if collection is not None and ids:
            collection.delete(ids=[_doc_id(agent_key, item_id) for item_id in ids])

    def _delete_agent(self, agent_key: AgentKey) -> None:
        """Delete from every space's collection of the agent's shard, as stored right now."""
        self._load_layout()
        with self._lock:
            spaces = sorted(self._layout.spaces)
        for space in spaces:
            collection = self._collection(space, agent_key, None, create=False)
            if collection is not None:
                collection.delete(where={"agent_key": agent_key})

    def _ensure_client(self) -> Client:
        return self._connected()[0]

    def _connected(self) -> tuple[Client, bool]:
        """The client, and whether this call connected it (and so has just read the layout)."""
        with self._lock:
            if self._client is not None:
                return self._client, False
            client = self._connect()
            try:
                self._scan(client)
            except BaseException:
                client.close()  # refused (shard counts, model) or unreachable: stay unopened
                raise
            self._client = client
            return client, True

    def _load_layout(self) -> None:
        """Re-read which spaces exist (another process may have created one)."""
        client, fresh = self._connected()
        if not fresh:
            with self._lock:
                self._scan(client)

    def _scan(self, client: Client) -> None:
        self._layout.scan((c.name, c.metadata or {}) for c in client.list_collections())

    def _collection(
        self, space: str, agent_key: AgentKey, dimensions: int | None, *, create: bool
    ) -> Collection | None:
        """The collection of the agent's shard in `space`; None if absent and not `create`.

        A cached collection costs no round trip. Any other is asked for on the server (another
        process may have created it since we connected). Until the shard count is settled
        (the index was empty when we connected and we created nothing), the layout is read
        again first: another process may have created the index with its own shard count,
        which we then adopt, or refuse (like at connect) when the index mixes counts."""
        if not _SPACE.fullmatch(space):
            raise StoreError(f"space must match {_SPACE.pattern}, got {space!r}")
        client, fresh = self._connected()
        with self._lock:
            if not self._layout.settled and not fresh:
                self._scan(client)
            return self._lookup(client, space, agent_key, dimensions, create=create)

    def _lookup(
        self,
        client: Client,
        space: str,
        agent_key: AgentKey,
        dimensions: int | None,
        *,
        create: bool,
    ) -> Collection | None:
        """_collection's part under the lock, once the layout is read."""
        if dimensions is not None:
            self._layout.check_dimensions(space, dimensions)
        name = collection_name(space, shard_of(agent_key, self._layout.shards))
        cached = self._collections.get(name)
        if cached is not None:
            return cached
        if not create and not self._layout.settled:
            return None  # the server held no botmem collection at all just now
        collection = self._open(client, name, dimensions, create=create)
        if collection is None:
            return None
        metadata = collection.metadata or {}
        if (
            create
            and not self._layout.settled
            and metadata.get("shards") not in (None, self._layout.shards)
        ):
            # Another process created this very collection since we read the layout, with its
            # shard count: adopt its layout (or refuse a mixed one) and look again.
            self._scan(client)
            if not self._layout.settled:
                raise StoreError(f"vector index {self._layout.where}: {name} vanished; try again")
            return self._lookup(client, space, agent_key, dimensions, create=create)
        if create:  # written with our count: a collection of another count is a mixed index
            self._layout.settled = True
        self._layout.remember(space, metadata, name)
        if dimensions is not None:  # a space another process created has its dimensions
            self._layout.check_dimensions(space, dimensions)
        self._collections[name] = collection
        return collection

    def _open(
        self, client: Client, name: str, dimensions: int | None, *, create: bool
    ) -> Collection | None:
        """Get (or create) a collection without any embedding function: we always pass vectors,
        and chroma's default would download a model."""
        from chromadb.errors import NotFoundError

        if not create:
            try:
                return client.get_collection(name, embedding_function=None)
            except NotFoundError:
                return None
        return client.get_or_create_collection(
            name,
            configuration={"hnsw": {"space": "cosine"}},
            metadata=self._layout.new_metadata(dimensions),
            embedding_function=None,
        )
