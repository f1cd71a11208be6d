"""ChromaVectorIndex.http against a real Chroma server (`chroma run` on 127.0.0.1).

One server serves the module; every test starts with it emptied. The index tests of
test_chroma.py and test_upsert_many.py (those taking only the `index` fixture) run here again,
unchanged, on an index over the server. The tests below are the server versions of those that
open indexes themselves (several clients, reopening, shard counts, models), plus what sharing
one server between processes brings (spaces and shard counts written by another client after
this one connected), a server restart, a server that is down for a while, and an App whose
archival memory lives on the server.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from botmem.app import App
from botmem.errors import StoreError
from botmem.stores.base import is_transient
from botmem.stores.chroma import ChromaVectorIndex, collection_name, shard_of
from botmem.testing import FakeAdapter, ScriptedLLM, call, reply
from botmem.testing.embeddings import HashEmbedder
from tests.helpers import make_settings
from tests.stores import test_chroma as embedded
from tests.stores import test_upsert_many as batched
from tests.stores.chroma_server import ChromaServer, running_chroma_server

unit, rows = embedded.unit, embedded.rows
COLLECTIONS = "/api/v2/tenants/default_tenant/databases/default_database/collections"

SHARDS = {embedded.__name__: 1, batched.__name__: 4}
"""The shard count each module's own `index` fixture uses."""
for _module in (embedded, batched):
    for _name, _test in vars(_module).items():
        if _name.startswith("test_") and list(inspect.signature(_test).parameters) == ["index"]:
            assert _name not in globals(), f"two reused tests named {_name}"
            globals()[_name] = _test  # collected here, where `index` is the fixture below


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    with running_chroma_server(tmp_path_factory.mktemp("chroma-server")) as started:
        yield started


def _wipe(url: str) -> None:
    """Delete every collection (through the REST API: no chroma client state to share)."""
    with httpx.Client(base_url=url, timeout=10, trust_env=False) as http:
        listed = http.get(COLLECTIONS)
        listed.raise_for_status()
        for collection in listed.json():
            http.delete(f"{COLLECTIONS}/{collection['name']}").raise_for_status()


def _collections(url: str) -> dict[str, dict[str, object]]:
    """Every collection on the server: name -> metadata."""
    with httpx.Client(base_url=url, timeout=10, trust_env=False) as http:
        listed = http.get(COLLECTIONS)
        listed.raise_for_status()
        return {collection["name"]: collection["metadata"] or {} for collection in listed.json()}


def _create(url: str, name: str, metadata: dict[str, object]) -> None:
    """Create a collection the way no botmem client would (e.g. an older one did)."""
    with httpx.Client(base_url=url, timeout=10, trust_env=False) as http:
        http.post(COLLECTIONS, json={"name": name, "metadata": metadata}).raise_for_status()


@pytest.fixture
def server(chroma_server: ChromaServer) -> str:
    """The URL of the module's server, running (a test may have stopped it) and emptied."""
    if not chroma_server.running:
        chroma_server.start()
    _wipe(chroma_server.url)
    return chroma_server.url


@pytest.fixture
async def index(request: pytest.FixtureRequest, server: str) -> AsyncIterator[ChromaVectorIndex]:
    opened = ChromaVectorIndex.http(server, shards=SHARDS[request.function.__module__])
    yield opened
    await opened.aclose()


async def ids(index: ChromaVectorIndex, space: str, agent: str, vector: np.ndarray) -> list[str]:
    return [item_id for item_id, _ in await index.query(space, agent, vector, limit=10)]


def test_the_index_tests_of_the_embedded_client_run_here() -> None:
    reused = {name for name in globals() if name.startswith("test_")}
    assert {
        "test_agents_sharing_a_shard_never_see_each_other",
        "test_delete_agent_clears_every_space",
        "test_rows_of_many_agents_land_with_their_agent",
    } <= reused


async def test_agents_in_different_shards_and_spaces(server: str) -> None:
    index = ChromaVectorIndex.http(server, shards=4)
    alice = "telegram:1"
    bob = next(f"telegram:{n}" for n in range(2, 50) if shard_of(f"telegram:{n}", 4) != 2)
    assert shard_of(alice, 4) == 2
    await index.upsert("passages", alice, ["1"], unit(1, 0))
    await index.upsert("messages", bob, ["7"], unit(1, 0))

    assert await index.query("passages", bob, unit(1, 0), limit=5) == []
    assert await index.query("messages", alice, unit(1, 0), limit=5) == []
    assert await ids(index, "messages", bob, unit(1, 0)) == ["7"]
    await index.aclose()


async def test_agents_of_one_client_never_see_another_clients_agents(server: str) -> None:
    """Two clients (two botmem processes) on one server: each agent sees only its own rows,
    even with the same item ids in the same shard."""
    first = ChromaVectorIndex.http(server, shards=2)
    await first.upsert("passages", "alice", ["1", "2"], rows(unit(1, 0), unit(0, 1)))
    second = ChromaVectorIndex.http(server, shards=2)
    await second.upsert_many(
        "passages", [("bob", "1"), ("carol", "1")], rows(unit(0, 1), unit(1, 1))
    )

    assert await ids(first, "passages", "bob", unit(0, 1)) == ["1"]
    assert await ids(second, "passages", "alice", unit(0, 1)) == ["2", "1"]
    [(_, distance)] = await second.query("passages", "bob", unit(1, 0), limit=5)
    assert distance == pytest.approx(1.0, abs=1e-5)  # bob's "1", not alice's
    await first.aclose()
    await second.aclose()


async def test_a_new_client_sees_what_another_wrote(server: str) -> None:
    first = ChromaVectorIndex.http(server, shards=2)
    await first.upsert("passages", "a", ["1", "2"], rows(unit(1), unit(0, 1)))
    await first.aclose()

    again = ChromaVectorIndex.http(server, shards=2)
    assert await ids(again, "passages", "a", unit(0, 1)) == ["2", "1"]
    ids_back, vectors = await again.vectors("passages", "a")
    assert sorted(ids_back) == ["1", "2"] and vectors.shape == (2, embedded.DIMS)
    await again.aclose()


async def test_reopen_with_other_shard_count_keeps_the_index_count(server: str) -> None:
    agents = [f"agent{n}" for n in range(20)]  # spread over both of the 2 shards
    first = ChromaVectorIndex.http(server, shards=2)
    await first.upsert_many("passages", [(agent, "1") for agent in agents], unit(1).repeat(20, 0))
    await first.aclose()

    again = ChromaVectorIndex.http(server, shards=3)
    for agent in agents:  # found where the 2-shard layout put them
        assert await ids(again, "passages", agent, unit(1)) == ["1"]
    await again.upsert("passages", "agent0", ["2"], unit(1, 1))
    assert await ids(again, "passages", "agent0", unit(1, 1)) == ["2", "1"]
    await again.aclose()


async def test_a_client_finds_spaces_created_after_it_connected(server: str) -> None:
    """Another process creates a space (and a shard of a known one) after this client read
    the layout: queries, reads, deletes and writes find them without a restart."""
    first = ChromaVectorIndex.http(server, shards=2)
    second = ChromaVectorIndex.http(server, shards=2)
    alice = "a"
    bob = next(f"b{n}" for n in range(50) if shard_of(f"b{n}", 2) != shard_of(alice, 2))
    await first.upsert("passages", alice, ["1"], unit(1))  # connected: knows one collection
    await second.upsert("notes", alice, ["n1", "n2"], rows(unit(0, 1), unit(1)))
    await second.upsert("passages", bob, ["7"], unit(1))  # the other shard of "passages"

    assert await ids(first, "notes", alice, unit(0, 1)) == ["n1", "n2"]
    assert await ids(first, "passages", bob, unit(1)) == ["7"]
    assert sorted((await first.vectors("notes", alice))[0]) == ["n1", "n2"]
    await first.delete("notes", alice, ["n2"])
    await first.upsert("notes", alice, ["n3"], unit(1, 1))
    assert await ids(second, "notes", alice, unit(1, 1)) == ["n3", "n1"]
    with pytest.raises(StoreError, match=r"vectors of 4 dims, index .* holds 8"):
        await first.upsert("notes", bob, ["x"], np.ones((1, 4), dtype=np.float32) / 2)
    await first.aclose()
    await second.aclose()


async def test_delete_agent_reaches_spaces_other_clients_created(server: str) -> None:
    first = ChromaVectorIndex.http(server, shards=2)
    second = ChromaVectorIndex.http(server, shards=2)
    await first.upsert("passages", "a", ["1"], unit(1))
    await second.upsert("notes", "a", ["n"], unit(1))  # a space first has never seen
    await second.upsert("notes", "b", ["n"], unit(1))

    await first.delete_agent("a")

    assert await ids(second, "notes", "a", unit(1)) == []
    assert await ids(second, "passages", "a", unit(1)) == []
    assert await ids(second, "notes", "b", unit(1)) == ["n"]
    await first.aclose()
    await second.aclose()


async def test_a_client_that_found_no_index_adopts_the_shard_count_written_since(
    server: str,
) -> None:
    """Clients with different shard counts connect to an empty server; one writes. The other's
    first write reads the layout again and writes with that count: the index never mixes
    counts (before, the next client to open it refused it)."""
    agents = [f"agent{n}" for n in range(20)]  # spread over the shards of 2 and of 3
    two = ChromaVectorIndex.http(server, shards=2)
    three = ChromaVectorIndex.http(server, shards=3)
    assert await three.query("messages", "a", unit(1), limit=5) == []  # connected: nothing yet
    await two.upsert("passages", "a", ["1"], unit(1))
    await three.upsert_many("messages", [(agent, "m") for agent in agents], unit(1).repeat(20, 0))

    on_server = _collections(server)
    assert {metadata["shards"] for metadata in on_server.values()} == {2}
    assert set(on_server) <= {
        collection_name(space, n) for space in ("passages", "messages") for n in (0, 1)
    }
    fresh = ChromaVectorIndex.http(server, shards=2)
    for agent in agents:  # found where the 2-shard layout puts them
        assert await ids(fresh, "messages", agent, unit(1)) == ["m"]
    assert await ids(three, "passages", "a", unit(1)) == ["1"]
    for opened in (two, three, fresh):
        await opened.aclose()


async def test_a_first_write_refuses_an_index_that_mixes_shard_counts(server: str) -> None:
    """A client that connected to an empty server checks the layout before it creates a
    collection: an index that mixes shard counts by now is refused as at connect."""
    late = ChromaVectorIndex.http(server, shards=2)
    assert await late.query("passages", "a", unit(1), limit=5) == []  # connected: nothing yet
    _create(server, collection_name("passages", 0), {"dimensions": embedded.DIMS, "shards": 2})
    _create(server, collection_name("passages", 1), {"dimensions": embedded.DIMS, "shards": 3})

    for _ in range(2):  # stays refused
        with pytest.raises(StoreError, match="mixes shard counts"):
            await late.upsert("messages", "a", ["1"], unit(1))
    fresh = ChromaVectorIndex.http(server, shards=2)
    with pytest.raises(StoreError, match="mixes shard counts"):  # the same as at connect
        await fresh.query("passages", "a", unit(1), limit=5)
    assert not any(name.startswith("botmem_messages") for name in _collections(server))
    await late.aclose()
    await fresh.aclose()


async def test_a_down_server_is_a_transient_store_error_until_it_is_back(
    server: str, chroma_server: ChromaServer
) -> None:
    """Connection failures, at the first call (chromadb's ValueError) or later (httpx's
    ConnectError), are StoreErrors a turn waits out; the same index works once it is back."""
    used = ChromaVectorIndex.http(server, shards=2)
    await used.upsert("passages", "a", ["1"], unit(1))
    unused = ChromaVectorIndex.http(server, shards=2)  # has not connected yet
    chroma_server.stop()
    try:
        calls = {
            "query": lambda index: index.query("passages", "a", unit(1), limit=5),
            "upsert": lambda index: index.upsert("passages", "b", ["2"], unit(0, 1)),
            "vectors": lambda index: index.vectors("passages", "a"),
            "delete_agent": lambda index: index.delete_agent("z"),
        }
        for index in (used, unused):
            for name, call in calls.items():
                with pytest.raises(StoreError, match="unreachable") as caught:
                    await call(index)
                assert is_transient(caught.value), name
    finally:
        chroma_server.start()  # on the same port: the clients' URL

    assert chroma_server.url == server
    assert await ids(used, "passages", "a", unit(1)) == ["1"]
    await used.upsert("passages", "b", ["2"], unit(0, 1))
    assert await ids(unused, "passages", "b", unit(0, 1)) == ["2"]
    await unused.upsert("passages", "a", ["3"], unit(1, 1))
    assert await ids(used, "passages", "a", unit(1, 1)) == ["3", "1"]
    await used.aclose()
    await unused.aclose()


async def test_model_change_is_refused(server: str) -> None:
    first = ChromaVectorIndex.http(server, model="minilm-int8")
    await first.upsert("passages", "a", ["1"], unit(1))

    other = ChromaVectorIndex.http(server, model="minilm-fp32")
    refused = rf"index {re.escape(server)} holds vectors of model 'minilm-int8'"
    with pytest.raises(StoreError, match=refused):
        await other.query("passages", "a", unit(1), limit=5)
    with pytest.raises(StoreError, match="model 'minilm-int8'"):  # stays refused, unopened
        await other.upsert("passages", "b", ["2"], unit(1))
    assert await ids(first, "passages", "a", unit(1)) == ["1"]  # and wrote nothing
    assert await ids(first, "passages", "b", unit(1)) == []
    await first.aclose()
    await other.aclose()


async def test_data_survives_a_server_restart(server: str, chroma_server: ChromaServer) -> None:
    index = ChromaVectorIndex.http(server, shards=2, model="hash-64")
    await index.upsert("passages", "a", ["1", "2"], rows(unit(1), unit(0, 1)))
    await index.upsert("passages", "b", ["1"], unit(1, 1))
    await index.aclose()

    chroma_server.restart()  # SIGTERM, then a new process on the same data and port

    again = ChromaVectorIndex.http(server, shards=2, model="hash-64")
    assert await ids(again, "passages", "a", unit(0, 1)) == ["2", "1"]
    assert await ids(again, "passages", "b", unit(1)) == ["1"]
    await again.aclose()


async def test_archival_memory_of_an_app_lives_on_the_server(server: str, tmp_path: Path) -> None:
    settings = make_settings(
        telegram={}, storage={"data_dir": str(tmp_path), "chroma_url": server, "chroma_shards": 4}
    )
    llm = ScriptedLLM(
        [
            call("archival_memory_insert", content="Ben's locker code is 4711", tags=["codes"]),
            reply("Noted."),
            call("archival_memory_search", query="what is the locker code"),
            reply("It is 4711."),
            call("archival_memory_search", query="what is the locker code"),
            reply("I don't know."),
        ]
    )
    async with await App.open(settings, llm=llm, embedder=HashEmbedder()) as app:
        chat = FakeAdapter("telegram")
        await app.start([chat])
        assert await chat.say("ben", "Remember: my locker code is 4711.") == "Noted."
        assert await chat.say("ben", "What's my locker code?") == "It is 4711."
        assert await chat.say("eve", "What's Ben's locker code?") == "I don't know."
        await app.stop()

    # What each tool call returned: the insert, ben's search, eve's search.
    results = [r.messages[-1] for r in llm.tool_requests if r.messages[-1]["role"] == "tool"]
    assert len(results) == 3
    assert "[codes] Ben's locker code is 4711" in results[1]["content"]
    assert results[2]["content"] == "No passages found."

    # The passage's vector is on the server (not in an embedded index), as ben's only.
    on_server = ChromaVectorIndex.http(server, shards=4, model="hash-64")
    [(passage_id, distance)] = await on_server.query(
        "passages",
        "telegram:ben",
        await HashEmbedder().embed(["Ben's locker code is 4711"]),
        limit=5,
    )
    assert distance == pytest.approx(0.0, abs=1e-5)
    assert results[0]["content"] == f"Saved to archival memory as passage {passage_id}."
    assert (await on_server.vectors("passages", "telegram:eve"))[0] == []
    await on_server.aclose()
    assert not (tmp_path / "chroma").exists()
