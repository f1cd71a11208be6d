"""Hybrid retrieval: full-text (BM25) and vector similarity, blended by score.

Each ranking alone misses things: BM25 needs the same words, vectors blur names and numbers.
Measured on LoCoMo (bench/locomo_retrieval.py), a convex blend of max-normalised BM25 and
cosine similarity beat reciprocal rank fusion by 6-8 points of recall@10: BM25's score gap
between a strong and a weak match carries information that ranks throw away. Messages get
their vectors in the background (`Indexer`), so a turn never waits for the embedder; until
then BM25 alone still finds them.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from datetime import datetime

from botmem.config import RetrievalSettings
from botmem.embeddings.base import Embedder
from botmem.stores.base import Passage, Stores
from botmem.types import AgentKey, Message

log = logging.getLogger(__name__)
MESSAGES = "messages"
PASSAGES = "passages"


def blend(
    text_hits: Sequence[tuple[int, float]],
    vector_hits: Sequence[tuple[int, float]],
    text_weight: float,
) -> list[int]:
    """Ids best first by text_weight * BM25 / max BM25 + (1 - text_weight) * cosine.

    `text_hits` are (id, BM25 score), `vector_hits` (id, cosine distance). An id missing from
    the vector hits gets the lowest similarity seen (it ranked below all of them), one missing
    from the text hits gets 0 (it matched no word). Ties: newest (highest id) first.
    """
    top = max((score for _, score in text_hits), default=0.0) or 1.0
    text = {item: score / top for item, score in text_hits}
    similarity = {item: 1.0 - distance for item, distance in vector_hits}
    floor = min(similarity.values(), default=0.0)
    score = {
        item: text_weight * text.get(item, 0.0) + (1 - text_weight) * similarity.get(item, floor)
        for item in text.keys() | similarity.keys()
    }
    return sorted(score, key=lambda item: (-score[item], -item))


class Retriever:
    def __init__(self, stores: Stores, embedder: Embedder, settings: RetrievalSettings):
        self._stores = stores
        self._embedder = embedder
        self._settings = settings

    async def search_messages(
        self,
        agent_key: AgentKey,
        query: str,
        *,
        limit: int,
        offset: int = 0,
        before_id: int | None = None,
    ) -> list[Message]:
        """The agent's past messages most relevant to `query`, best first.

        `before_id` leaves out that message and later ones (the turn being answered, which the
        model already sees).
        """
        n = max(self._settings.candidates, offset + limit)
        by_words, by_meaning = await asyncio.gather(
            self._stores.history.search(agent_key, query, limit=n),
            self._nearest(MESSAGES, agent_key, query, n),
        )
        cutoff = before_id if before_id is not None else math.inf
        text_hits = [(m.id, score) for m, score in by_words if m.id is not None and m.id < cutoff]
        vector_hits = [(item, distance) for item, distance in by_meaning if item < cutoff]
        ranked = blend(text_hits, vector_hits, self._settings.text_weight)
        page = ranked[offset : offset + limit]
        known = {m.id: m for m, _score in by_words}
        missing = await self._stores.history.get_many(
            agent_key, [i for i in page if i not in known]
        )
        known.update((m.id, m) for m in missing)
        return [known[i] for i in page if i in known]

    async def insert_passage(self, passage: Passage) -> Passage:
        """Store a passage and its vector (passages are few: embedding inline is cheap)."""
        (stored,) = await self._stores.archival.insert([passage])
        vectors = await self._embedder.embed([stored.text])
        await self._stores.vectors.upsert(PASSAGES, stored.agent_key, [str(stored.id)], vectors)
        return stored

    async def search_passages(
        self,
        agent_key: AgentKey,
        query: str,
        *,
        limit: int,
        offset: int = 0,
        tags: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Passage]:
        """The agent's passages most relevant to `query` that pass the tag and date filters."""
        n = max(self._settings.candidates, offset + limit)
        by_words, nearest = await asyncio.gather(
            self._stores.archival.search(
                agent_key, query, limit=n, tags=tags, start=start, end=end
            ),
            self._nearest(PASSAGES, agent_key, query, n),
        )
        found = await self._stores.archival.get_many(agent_key, [i for i, _ in nearest])
        allowed = {p.id for p in found if _passes(p, tags, start, end)}
        text_hits = [(p.id, score) for p, score in by_words if p.id is not None]
        by_meaning = [(item, distance) for item, distance in nearest if item in allowed]
        ranked = blend(text_hits, by_meaning, self._settings.text_weight)
        return await self._stores.archival.get_many(agent_key, ranked[offset : offset + limit])

    async def _nearest(
        self, space: str, agent_key: AgentKey, query: str, n: int
    ) -> list[tuple[int, float]]:
        """(id, cosine distance) of the agent's nearest items, nearest first."""
        if not query.strip():
            return []
        vector = await self._embedder.embed([query])
        hits = await self._stores.vectors.query(space, agent_key, vector, limit=n)
        return [(int(item_id), distance) for item_id, distance in hits]


def _passes(
    passage: Passage, tags: Sequence[str] | None, start: datetime | None, end: datetime | None
) -> bool:
    if tags and not set(tags) <= set(passage.tags):
        return False
    if start is not None and passage.created_at < start:
        return False
    return end is None or passage.created_at < end


class Indexer:
    """Embeds stored messages in the background, in batches, oldest first."""

    def __init__(
        self,
        stores: Stores,
        embedder: Embedder,
        *,
        batch: int = 256,
        delay: float = 0.5,
        max_lag: float = 10.0,
        busy: Callable[[], bool] = lambda: False,
    ):
        self._stores = stores
        self._embedder = embedder
        self._batch = batch
        self._delay = delay
        """Seconds to gather messages before indexing: one batch instead of one per message."""
        self._max_lag = max_lag
        """Seconds indexing may wait while turns run (`busy`): embedding takes the CPU turns
        need, and the newest messages are in the context anyway (and found by words)."""
        self._busy = busy
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def index_pending(self) -> int:
        """Embed the messages still without a vector; returns how many were indexed.

        Goes on while it finds full batches, so a backlog drains; messages arriving during a
        partial batch wait for the next pass, which then takes them all in one batch.
        """
        total = 0
        while messages := await self._stores.history.unindexed(limit=self._batch):
            vectors = await self._embedder.embed([m.spoken for m in messages])
            keys = [(m.agent_key, str(m.id)) for m in messages]
            await self._stores.vectors.upsert_many(MESSAGES, keys, vectors)
            await self._stores.history.mark_indexed([m.id for m in messages if m.id is not None])
            total += len(messages)
            if len(messages) < self._batch:
                break
        return total

    def notify(self) -> None:
        """New messages were stored: index them soon."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="botmem-indexer")
        self._wake.set()  # catch up on what a previous run left unindexed

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await self._gather()
            self._wake.clear()
            try:
                count = await self.index_pending()
            except Exception:  # boundary: indexing must never stop; BM25 still finds messages
                log.exception("indexing messages failed; retrying on the next message")
                continue
            if count:
                log.debug("indexed %d message(s)", count)

    async def _gather(self) -> None:
        """Wait `delay` for more messages, and while turns are running up to `max_lag`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_lag
        await asyncio.sleep(self._delay)
        while self._busy() and loop.time() < deadline:
            await asyncio.sleep(self._delay)
