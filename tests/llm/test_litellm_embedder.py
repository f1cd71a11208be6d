"""LiteLLMEmbedder against FakeOpenAIServer's /v1/embeddings: order, norms, retries, errors."""

from __future__ import annotations

import numpy as np
import pytest

from botmem.errors import LLMError
from botmem.llm import litellm_client
from botmem.llm.litellm_client import LiteLLMEmbedder
from botmem.testing.embeddings import HashEmbedder
from botmem.testing.openai_server import FakeOpenAIServer, error, text


def make_embedder(server: FakeOpenAIServer, **kwargs: object) -> LiteLLMEmbedder:
    options: dict = {
        "api_base": server.base_url,
        "api_key": "sk-embed-secret",
        "dimensions": 64,
        "retry_backoff": 0.01,
    }
    options.update(kwargs)
    return LiteLLMEmbedder("openai/test-embed", **options)


async def test_vectors_match_the_server_in_input_order_and_are_normalised() -> None:
    texts = ["the cat sat", "", "a dog barked at the cat"]
    async with FakeOpenAIServer() as server:
        vectors = await make_embedder(server).embed(texts)
    expected = await HashEmbedder(64).embed(texts)
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 64)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    request = server.embedding_requests[0]
    assert request["model"] == "test-embed"
    assert request["input"] == ["the cat sat", " ", "a dog barked at the cat"]  # never ""


async def test_unnormalised_vectors_are_normalised() -> None:
    async with FakeOpenAIServer(embedder=lambda t: [3.0, 4.0]) as server:
        vectors = await make_embedder(server, dimensions=2).embed(["x"])
    np.testing.assert_allclose(vectors, [[0.6, 0.8]], atol=1e-6)


async def test_empty_input_makes_no_request() -> None:
    async with FakeOpenAIServer() as server:
        vectors = await make_embedder(server).embed([])
    assert vectors.shape == (0, 64)
    assert server.embedding_requests == []


async def test_many_texts_are_split_into_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(litellm_client, "EMBEDDING_BATCH", 4)
    texts = [f"text number {i}" for i in range(10)]
    async with FakeOpenAIServer() as server:
        vectors = await make_embedder(server).embed(texts)
    assert [len(r["input"]) for r in server.embedding_requests] == [4, 4, 2]
    np.testing.assert_allclose(vectors, await HashEmbedder(64).embed(texts), atol=1e-6)


async def test_retryable_errors_are_retried() -> None:
    async with FakeOpenAIServer() as server:
        server.queue_embeddings(error(429, "slow down"), error(503, "busy"))
        vectors = await make_embedder(server).embed(["hello"])
    assert vectors.shape == (1, 64)
    assert len(server.embedding_requests) == 3


async def test_exhausted_retries_raise_one_retryable_line() -> None:
    async with FakeOpenAIServer() as server:
        server.queue_embeddings(*[error(500, "boom")] * 3, text(""))
        with pytest.raises(LLMError) as caught:
            await make_embedder(server, max_retries=2).embed(["hello"])
    message = str(caught.value)
    assert caught.value.retryable
    assert message.startswith("embedding call to openai/test-embed failed: ")
    assert "after 3 attempts" in message
    assert "\n" not in message
    assert len(server.embedding_requests) == 3


async def test_auth_error_is_not_retried_and_hides_the_key() -> None:
    async with FakeOpenAIServer() as server:
        server.queue_embeddings(error(401, "bad key sk-embed-secret"))
        with pytest.raises(LLMError) as caught:
            await make_embedder(server).embed(["hello"])
    assert not caught.value.retryable
    assert "authentication" in str(caught.value)
    assert "sk-embed-secret" not in str(caught.value)
    assert len(server.embedding_requests) == 1


async def test_wrong_dimensions_fail_loudly() -> None:
    async with FakeOpenAIServer() as server:
        with pytest.raises(LLMError, match=r"64-dimensional vectors, configured 384"):
            await make_embedder(server, dimensions=384).embed(["hello"])
    assert len(server.embedding_requests) == 1


async def test_server_answers_base64_when_asked() -> None:
    """The openai SDK asks for base64 unless told otherwise; the fake server must speak it."""
    import httpx

    async with FakeOpenAIServer() as server, httpx.AsyncClient() as client:
        body = {"model": "m", "input": "hi", "encoding_format": "base64"}
        response = await client.post(f"{server.base_url}/embeddings", json=body)
    raw = response.json()["data"][0]["embedding"]
    import base64

    decoded = np.frombuffer(base64.b64decode(raw), dtype="<f4")
    np.testing.assert_allclose(decoded, (await HashEmbedder(64).embed(["hi"]))[0], atol=1e-6)


def test_name_defaults_to_the_model_and_repr_hides_the_key() -> None:
    embedder = LiteLLMEmbedder("openai/x", api_key="sk-secret", dimensions=8)
    assert embedder.name == "openai/x"
    assert embedder.dimensions == 8
    assert "sk-secret" not in repr(embedder)
