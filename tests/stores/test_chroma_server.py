"""ChromaVectorIndex.http against a real Chroma server (`chroma run` on 127.0.0.1).

One server serves the module; every test starts with it emptied. The index tests of
test_chroma.py and test_upsert_many.py (those taking only the `index` fixture) run here again,
unchanged, on an index over the server. The tests below are the server versions of those that
open indexes themselves (several clients, reopening, shard counts, models), plus a server
restart and an App whose archival memory lives on the server.
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
from botmem.stores.chroma import ChromaVectorIndex, shard_of
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


@pytest.fixture
def server(chroma_server: ChromaServer) -> str:
    """The URL of the module's server, emptied of collections."""
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


async def test_an_index_with_two_shard_counts_is_refused(server: str) -> None:
    """Clients with different shard counts that connected to an empty server both create
    collections; whoever opens the index next refuses it rather than miss agents' rows."""
    two = ChromaVectorIndex.http(server, shards=2)
    three = ChromaVectorIndex.http(server, shards=3)
    assert await three.query("messages", "a", unit(1), limit=5) == []  # connected: nothing yet
    await two.upsert("passages", "a", ["1"], unit(1))
    await three.upsert("messages", "a", ["2"], unit(1))

    fresh = ChromaVectorIndex.http(server, shards=2)
    with pytest.raises(StoreError, match="mixes shard counts"):
        await fresh.query("passages", "a", unit(1), limit=5)
    for opened in (two, three, fresh):
        await opened.aclose()


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

    chroma_server.restart()  # SIGTERM, then a new process on the same data (and a new port)

    again = ChromaVectorIndex.http(chroma_server.url, shards=2, model="hash-64")
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
