"""Blending BM25 with vector similarity; the background indexer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from botmem.agent.retrieval import MESSAGES, Indexer, Retriever, blend
from botmem.config import RetrievalSettings
from botmem.stores.memory import memory_stores
from botmem.testing.embeddings import HashEmbedder
from botmem.types import Message

NOW = datetime(2026, 2, 1, tzinfo=UTC)


def test_blend_weighs_normalised_bm25_against_cosine() -> None:
    text = [(1, 10.0), (2, 5.0)]
    vectors = [(3, 0.1), (2, 0.2), (1, 0.9)]  # distances: 3 is nearest
    assert blend(text, vectors, 1.0)[:2] == [1, 2]
    assert blend(text, vectors, 0.0)[0] == 3
    # 0.5: id 2 = .5*.5 + .5*.8 = .65, id 1 = .5*1 + .5*.1 = .55, id 3 = .5*0 + .5*.9 = .45
    assert blend(text, vectors, 0.5) == [2, 1, 3]


def test_blend_handles_missing_sides_and_ties() -> None:
    assert blend([], [], 0.5) == []
    assert blend([(4, 2.0), (9, 2.0)], [], 0.5) == [9, 4]  # equal: newest first
    # an id without a vector hit gets the lowest similarity seen, not zero
    assert blend([(1, 1.0)], [(2, 0.5), (3, 0.6)], 0.5) == [1, 2, 3]


async def test_indexer_embeds_pending_messages_and_search_uses_both_rankings() -> None:
    stores = memory_stores()
    embedder = HashEmbedder()
    await stores.agents.ensure("a:1")
    await stores.history.append(
        [
            Message("a:1", "user", "my sister Ana lives in Porto", NOW),
            Message("a:1", "assistant", "Porto is lovely in spring", NOW),
            Message("a:1", "tool", "ok", NOW, tool_call_id="c", name="x"),
        ]
    )
    indexer = Indexer(stores, embedder, delay=0)
    indexer.start()
    for _ in range(100):
        if not await stores.history.unindexed(limit=10):
            break
        await asyncio.sleep(0.01)
    await indexer.stop()
    assert await stores.history.unindexed(limit=10) == []
    vector = await embedder.embed(["sister Ana"])
    hits = await stores.vectors.query(MESSAGES, "a:1", vector, limit=5)
    assert len(hits) == 2  # the tool message has nothing to embed
    retriever = Retriever(stores, embedder, RetrievalSettings())
    found = await retriever.search_messages("a:1", "where does my sister live?", limit=2)
    assert found[0].content == "my sister Ana lives in Porto"
    assert await retriever.search_messages("a:2", "sister", limit=2) == []
