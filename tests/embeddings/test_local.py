"""MiniLMEmbedder with the real int8 model, offline; and the HashEmbedder test double."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from botmem.embeddings.base import Embedder
from botmem.embeddings.local import DIMENSIONS, MiniLMEmbedder
from botmem.testing.embeddings import HashEmbedder


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    """One loaded model for the module: loading costs ~0.4 s."""
    return MiniLMEmbedder()


@pytest.fixture(autouse=True)
def hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may fetch a model; HF_HUB_OFFLINE makes any library that tries fail fast."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)  # rows are unit vectors


async def test_shape_dtype_and_unit_norm(embedder: MiniLMEmbedder) -> None:
    vectors = await embedder.embed(["Hello there!", "I love hiking in the mountains."])
    assert vectors.shape == (2, DIMENSIONS)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.dimensions == 384
    assert embedder.name == "all-MiniLM-L6-v2-int8"


async def test_empty_input_gives_an_empty_matrix(embedder: MiniLMEmbedder) -> None:
    vectors = await embedder.embed([])
    assert vectors.shape == (0, DIMENSIONS)
    assert vectors.dtype == np.float32


async def test_empty_string_gets_a_unit_vector(embedder: MiniLMEmbedder) -> None:
    vectors = await embedder.embed([""])
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)


async def test_related_sentences_are_clearly_nearer(embedder: MiniLMEmbedder) -> None:
    food, bread, market = await embedder.embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell."]
    )
    assert cosine(food, bread) > 0.6  # sentence-transformers fp32: 0.755
    assert cosine(food, bread) - cosine(food, market) > 0.4


async def test_batch_keeps_input_order_and_matches_single_calls(embedder: MiniLMEmbedder) -> None:
    # Lengths deliberately out of order: batching sorts by length and must restore order.
    texts = [
        "a much longer sentence about a trip to the seaside with my sister last summer",
        "hi",
        "my dog is called Max",
        "",
        "what did we talk about yesterday evening?",
    ]
    batched = await embedder.embed(texts)
    singles = np.vstack([await embedder.embed([text]) for text in texts])
    np.testing.assert_allclose(batched, singles, atol=2e-3)
    for i in range(len(texts)):  # each row is nearest to its own single embedding
        assert int(np.argmax(singles @ batched[i])) == i


async def test_batches_smaller_than_the_input_give_the_same_vectors() -> None:
    small = MiniLMEmbedder(batch_size=2)
    texts = [f"message number {i} about {word}" for i, word in enumerate("abcdefg")]
    big = await MiniLMEmbedder().embed(texts)
    np.testing.assert_allclose(await small.embed(texts), big, atol=2e-3)


async def test_long_input_is_truncated_without_error(embedder: MiniLMEmbedder) -> None:
    long_text = "memory " * 2000
    vectors = await embedder.embed([long_text, "short"])
    assert vectors.shape == (2, DIMENSIONS)
    assert np.isfinite(vectors).all()
    # Beyond 256 wordpieces nothing counts: more of the same text changes nothing.
    (longer,) = await embedder.embed(["memory " * 3000])
    assert cosine(vectors[0], longer) > 0.9999


async def test_concurrent_calls_do_not_interfere(embedder: MiniLMEmbedder) -> None:
    texts = ["one cat", "two dogs", "three birds", "four fish"]
    results = await asyncio.gather(*(embedder.embed([t]) for t in texts))
    expected = await embedder.embed(texts)
    np.testing.assert_allclose(np.vstack(results), expected, atol=2e-3)


async def test_embed_does_not_block_the_event_loop(embedder: MiniLMEmbedder) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await embedder.embed(["a sentence to embed"] * 64)
    task.cancel()
    assert ticks > 3


def test_tokenizer_matches_bert_uncased(embedder: MiniLMEmbedder) -> None:
    """Spot-check against ids of the model's own tokenizer.json (bert-base-uncased)."""
    tokenizer = embedder._load().tokenizer
    assert tokenizer.encode("Hello, World!").ids == [101, 7592, 1010, 2088, 999, 102]
    assert tokenizer.encode("Café résumé").ids == [101, 7668, 13746, 102]
    assert len(tokenizer.encode("word " * 1000).ids) == 256


def test_both_embedders_satisfy_the_protocol() -> None:
    embedders: list[Embedder] = [MiniLMEmbedder(), HashEmbedder()]
    assert [e.dimensions for e in embedders] == [384, 64]


# -- HashEmbedder -----------------------------------------------------------------------------


async def test_hash_embedder_is_deterministic_normalised_and_shaped() -> None:
    embedder = HashEmbedder()
    first = await embedder.embed(["The cat sat", "", "!!!"])
    again = await HashEmbedder().embed(["the CAT sat", "", "!!!"])
    assert first.shape == (3, 64)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, again)  # lower-cased words only
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-6)
    assert (await embedder.embed([])).shape == (0, 64)
    assert embedder.calls == [["The cat sat", "", "!!!"], []]


async def test_hash_embedder_puts_texts_sharing_words_nearer() -> None:
    query, shared, other = await HashEmbedder().embed(
        ["where does Alice live", "Alice lives in Paris", "bought tomatoes yesterday"]
    )
    assert cosine(query, shared) > cosine(query, other)


async def test_hash_embedder_dimensions_and_name() -> None:
    embedder = HashEmbedder(dimensions=16)
    assert embedder.name == "hash-16"
    assert (await embedder.embed(["x"])).shape == (1, 16)


def test_batches_respect_the_token_budget() -> None:
    from botmem.embeddings.local import BATCH_TOKENS, _chunks

    lengths = [5] * 40 + [256] * 20
    chunks = _chunks(list(range(60)), lengths, 32)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(60))
    assert all(len(chunk) <= 32 for chunk in chunks)
    assert all(len(chunk) * lengths[chunk[-1]] <= BATCH_TOKENS for chunk in chunks)
