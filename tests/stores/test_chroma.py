"""ChromaVectorIndex on an embedded chroma in tmp_path, with 8-dimensional hand-made vectors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from botmem.errors import StoreError
from botmem.stores.base import is_transient
from botmem.stores.chroma import ChromaVectorIndex, shard_of

DIMS = 8


def unit(*weights: float) -> np.ndarray:
    """One normalised row from the first few coordinates (the rest are zero)."""
    row = np.zeros((1, DIMS), dtype=np.float32)
    row[0, : len(weights)] = weights
    return row / np.linalg.norm(row)


def rows(*vectors: np.ndarray) -> np.ndarray:
    return np.vstack(vectors)


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[ChromaVectorIndex]:
    opened = ChromaVectorIndex.persistent(tmp_path / "chroma", shards=1)
    yield opened
    await opened.aclose()


async def test_nearest_first_with_cosine_distance(index: ChromaVectorIndex) -> None:
    vectors = rows(unit(1, 0), unit(1, 1), unit(0, 1), unit(-1, 0))
    await index.upsert("passages", "a", ["east", "north-east", "north", "west"], vectors)

    hits = await index.query("passages", "a", unit(1, 0.1), limit=3)

    assert [item_id for item_id, _ in hits] == ["east", "north-east", "north"]
    distances = [distance for _, distance in hits]
    assert distances == sorted(distances)
    assert distances[0] == pytest.approx(1 - 1 / np.sqrt(1.01), abs=1e-4)


async def test_agents_sharing_a_shard_never_see_each_other(index: ChromaVectorIndex) -> None:
    await index.upsert("passages", "alice", ["1", "2"], rows(unit(1, 0), unit(0, 1)))
    await index.upsert("passages", "bob", ["1", "3"], rows(unit(0, 1), unit(1, 1)))

    alice = await index.query("passages", "alice", unit(0, 1), limit=10)
    bob = await index.query("passages", "bob", unit(1, 0), limit=10)

    assert [item_id for item_id, _ in alice] == ["2", "1"]
    assert [item_id for item_id, _ in bob] == ["3", "1"]
    assert dict(alice)["1"] == pytest.approx(1.0, abs=1e-5)  # alice's "1", not bob's


async def test_agents_in_different_shards_and_spaces(tmp_path: Path) -> None:
    index = ChromaVectorIndex.persistent(tmp_path / "chroma", shards=4)
    alice = "telegram:1"
    bob = next(f"telegram:{n}" for n in range(2, 50) if shard_of(f"telegram:{n}", 4) != 2)
    assert shard_of(alice, 4) == 2  # crc32 is stable: the same shard in every process
    await index.upsert("passages", alice, ["1"], unit(1, 0))
    await index.upsert("messages", bob, ["7"], unit(1, 0))

    assert await index.query("passages", bob, unit(1, 0), limit=5) == []
    assert await index.query("messages", alice, unit(1, 0), limit=5) == []
    assert [i for i, _ in await index.query("messages", bob, unit(1, 0), limit=5)] == ["7"]
    await index.aclose()


async def test_empty_agent_and_unknown_space_give_nothing(index: ChromaVectorIndex) -> None:
    assert await index.query("passages", "nobody", unit(1), limit=5) == []
    await index.upsert("passages", "a", ["1"], unit(1))
    assert await index.query("passages", "nobody", unit(1), limit=5) == []
    assert await index.query("messages", "a", unit(1), limit=5) == []


async def test_limit_larger_than_stored(index: ChromaVectorIndex) -> None:
    await index.upsert("passages", "a", ["1", "2"], rows(unit(1), unit(0, 1)))
    await index.upsert("passages", "b", [str(n) for n in range(10, 20)], np.repeat(unit(1), 10, 0))

    hits = await index.query("passages", "a", unit(1), limit=50)

    assert [item_id for item_id, _ in hits] == ["1", "2"]


async def test_upsert_replaces_a_vector(index: ChromaVectorIndex) -> None:
    await index.upsert("passages", "a", ["1", "2"], rows(unit(1), unit(0, 1)))
    await index.upsert("passages", "a", ["1"], unit(0, 0, 1))

    hits = await index.query("passages", "a", unit(0, 0, 1), limit=5)

    assert [item_id for item_id, _ in hits] == ["1", "2"]
    assert hits[0][1] == pytest.approx(0.0, abs=1e-5)


async def test_persists_across_reopen(tmp_path: Path) -> None:
    first = ChromaVectorIndex.persistent(tmp_path / "chroma", shards=2)
    await first.upsert("passages", "a", ["1", "2"], rows(unit(1), unit(0, 1)))
    await first.aclose()

    again = ChromaVectorIndex.persistent(tmp_path / "chroma", shards=2)
    hits = await again.query("passages", "a", unit(0, 1), limit=5)
    await again.aclose()

    assert [item_id for item_id, _ in hits] == ["2", "1"]


async def test_reopen_with_other_shard_count_keeps_the_index_count(tmp_path: Path) -> None:
    agents = [f"agent{n}" for n in range(20)]  # spread over both of the 2 shards
    first = ChromaVectorIndex.persistent(tmp_path / "chroma", shards=2)
    for agent in agents:
        await first.upsert("passages", agent, ["1"], unit(1))
    await first.aclose()

    again = ChromaVectorIndex.persistent(tmp_path / "chroma", shards=3)
    for agent in agents:  # found where the 2-shard layout put them
        assert [i for i, _ in await again.query("passages", agent, unit(1), limit=5)] == ["1"]
    await again.upsert("passages", "agent0", ["2"], unit(1, 1))  # written there too
    found = await again.query("passages", "agent0", unit(1, 1), limit=5)
    assert [i for i, _ in found] == ["2", "1"]
    await again.aclose()


async def test_delete_only_touches_that_agent(index: ChromaVectorIndex) -> None:
    await index.upsert("passages", "a", ["1", "2"], rows(unit(1), unit(0, 1)))
    await index.upsert("passages", "b", ["1"], unit(1))

    await index.delete("passages", "a", ["1", "unknown"])

    assert [i for i, _ in await index.query("passages", "a", unit(1), limit=5)] == ["2"]
    assert [i for i, _ in await index.query("passages", "b", unit(1), limit=5)] == ["1"]
    await index.delete("messages", "a", ["1"])  # a space never written: nothing to do


async def test_delete_agent_clears_every_space(index: ChromaVectorIndex) -> None:
    await index.upsert("passages", "a", ["1"], unit(1))
    await index.upsert("messages", "a", ["5"], unit(1))
    await index.upsert("messages", "b", ["6"], unit(1))

    await index.delete_agent("a")
    await index.delete_agent("never-seen")

    assert await index.query("passages", "a", unit(1), limit=5) == []
    assert await index.query("messages", "a", unit(1), limit=5) == []
    assert [i for i, _ in await index.query("messages", "b", unit(1), limit=5)] == ["6"]


async def test_dimension_mismatch_is_a_clear_error(index: ChromaVectorIndex) -> None:
    await index.upsert("passages", "a", ["1"], unit(1))
    other = np.ones((1, 4), dtype=np.float32) / 2

    with pytest.raises(StoreError, match=r"vectors of 4 dims, index .* holds 8"):
        await index.upsert("passages", "b", ["2"], other)
    with pytest.raises(StoreError, match="embedding model changed"):
        await index.query("passages", "a", other, limit=5)
    await index.upsert("messages", "a", ["3"], other)  # spaces are independent


async def test_model_change_is_refused(tmp_path: Path) -> None:
    first = ChromaVectorIndex.persistent(tmp_path / "chroma", model="minilm-int8")
    await first.upsert("passages", "a", ["1"], unit(1))
    await first.aclose()

    again = ChromaVectorIndex.persistent(tmp_path / "chroma", model="minilm-fp32")
    with pytest.raises(StoreError, match="model 'minilm-int8'"):
        await again.query("passages", "a", unit(1), limit=5)
    await again.aclose()


async def test_ids_and_vectors_must_agree(index: ChromaVectorIndex) -> None:
    with pytest.raises(StoreError, match="2 ids but 1 vectors"):
        await index.upsert("passages", "a", ["1", "2"], unit(1))
    with pytest.raises(StoreError, match="space must match"):
        await index.upsert("Bad Space", "a", ["1"], unit(1))
    await index.upsert("passages", "a", [], np.zeros((0, DIMS), dtype=np.float32))


async def test_concurrent_calls_from_many_agents(index: ChromaVectorIndex) -> None:
    """asyncio.to_thread runs these on several threads at once."""
    agents = [f"agent:{n}" for n in range(12)]
    await asyncio.gather(
        *(index.upsert("passages", key, ["1", "2"], rows(unit(1), unit(0, 1))) for key in agents)
    )
    results = await asyncio.gather(
        *(index.query("passages", key, unit(1), limit=5) for key in agents)
    )
    assert all([i for i, _ in hits] == ["1", "2"] for hits in results)


def _raised_from(error: Exception, cause: BaseException) -> Exception:
    """`error` as chromadb raises it: inside an `except` for `cause`."""
    error.__context__ = cause
    return error


def _status(code: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://chroma.lan/api/v2/collections")
    return httpx.HTTPStatusError("status", request=request, response=httpx.Response(code))


class _FailingClient:
    """A chroma client whose every request fails with `error`."""

    def __init__(self, error: Exception):
        self.error = error
        self.closed = False

    def list_collections(self) -> None:
        raise self.error

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    "failure",
    [
        _raised_from(
            ValueError("Could not connect to a Chroma server. Are you sure it is running?"),
            httpx.ConnectError("[Errno 111] Connection refused"),
        ),
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        _raised_from(Exception("<html>503 Service Unavailable</html>"), _status(503)),
        _raised_from(ValueError("<html>502 Bad Gateway</html>"), _status(502)),
    ],
)
async def test_an_unreachable_server_is_a_transient_store_error(failure: Exception) -> None:
    """At connect (chromadb's ValueError) or at a request; the client stays unopened."""
    clients: list[_FailingClient] = []

    def connect() -> _FailingClient:
        if isinstance(failure, ValueError):
            raise failure
        clients.append(_FailingClient(failure))
        return clients[-1]

    index = ChromaVectorIndex(connect, where="http://chroma.lan")  # type: ignore[arg-type]
    for _ in range(2):  # every call tries to connect again
        with pytest.raises(StoreError, match=r"index http://chroma\.lan unreachable") as caught:
            await index.query("passages", "a", unit(1), limit=5)
        assert is_transient(caught.value)
        assert caught.value.__cause__ is failure
    assert all(client.closed for client in clients)


@pytest.mark.parametrize(
    "failure",
    [ValueError("a bug"), _raised_from(Exception("internal error"), _status(500))],
)
async def test_other_failures_are_not_store_errors(failure: Exception) -> None:
    index = ChromaVectorIndex(lambda: _FailingClient(failure))  # type: ignore[arg-type,return-value]
    with pytest.raises(type(failure)) as caught:
        await index.query("passages", "a", unit(1), limit=5)
    assert caught.value is failure


def test_http_url_is_parsed_without_connecting() -> None:
    ChromaVectorIndex.http("https://chroma.example:9000")
    with pytest.raises(StoreError, match="chroma url"):
        ChromaVectorIndex.http("chroma.example:9000")


def test_importing_the_module_does_not_import_chromadb(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from botmem.stores.chroma import ChromaVectorIndex\n"
        f"ChromaVectorIndex.persistent({str(tmp_path)!r})\n"
        "assert 'chromadb' not in sys.modules, 'chromadb imported too early'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
