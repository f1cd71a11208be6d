"""Fuzz every operation in /openapi.json (schemathesis): no input gives a 500.

Cases come from the schema botmem serves, valid ones and invalid ones, against random ids
and against an agent that exists (so bodies reach the code behind the 404 check). The server
runs in its own thread and event loop, as a real one would; requests go over HTTP.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from botmem.app import App
from botmem.server.api_adapter import ApiAdapter
from botmem.server.serve import http_api
from botmem.testing.embeddings import HashEmbedder
from botmem.testing.openai_server import FakeOpenAIServer
from tests.server.conftest import server_settings
from tests.stores.conftest import _fresh_pg_database

EXAMPLES = 25


class ThreadServer:
    """`botmem serve`'s app on a thread of its own; `url` once started."""

    def __init__(self, data: Path, database_url: str = ""):
        self._data = data
        self._database_url = database_url
        self._ready = threading.Event()
        self._stop = threading.Event()
        self.url = ""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> ThreadServer:
        self._thread.start()
        assert self._ready.wait(60), "the server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    async def _main(self) -> None:
        async with FakeOpenAIServer() as llm:
            adapter = ApiAdapter()
            settings_ = server_settings(self._data, llm)
            settings_.storage.database_url = self._database_url
            async with await App.open(settings_, embedder=HashEmbedder()) as app:
                await app.start([adapter])
                async with http_api(app, adapter, host="127.0.0.1", port=0, key=None) as url:
                    self.url = url
                    self._ready.set()
                    while not self._stop.is_set():
                        await asyncio.sleep(0.05)
                await app.shutdown(2)


@contextmanager
def _database(kind: str) -> Iterator[str]:
    """ "" (SQLite under the data dir), or a fresh PostgreSQL database (dropped after)."""
    if kind == "sqlite":
        yield ""
        return
    loop = asyncio.new_event_loop()
    fresh = _fresh_pg_database()
    try:
        yield loop.run_until_complete(anext(fresh))  # skips when no server is reachable
    finally:
        loop.run_until_complete(fresh.aclose())
        loop.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadServer]:
    with (
        _database(request.param) as url,
        ThreadServer(tmp_path_factory.mktemp("fuzz"), url) as running,
    ):
        yield running


def _operations(url: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def _an_agent(url: str) -> str:
    body = {"name": "fuzzed", "memory_blocks": [{"label": "human", "value": "Ann"}]}
    made = httpx.post(f"{url}/v1/agents/", json=body, timeout=30)
    made.raise_for_status()
    return str(made.json()["id"])


def _no_server_error(operation: Any, url: str, mode: GenerationMode, **fixed: Any) -> bool:
    """Fuzz one operation; False when the schema admits no case of this mode (e.g. no
    invalid input for a GET without parameters)."""
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(mode, **fixed))
    def check(case: Any) -> None:
        response = case.call(base_url=url, timeout=30)
        if response.status_code >= 500:
            failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}")
        assert response.status_code < 500, response.text[:500]

    try:
        check()
    except Unsatisfiable:
        return False
    assert failures == []
    return True


def test_the_schema_lists_the_letta_routes(server: ThreadServer) -> None:
    paths = {op.path for op in _operations(server.url)}
    assert {"/v1/agents/", "/v1/agents/{agent_id}"} <= paths


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gives_a_server_error(server: ThreadServer, mode: GenerationMode) -> None:
    fuzzed = 0
    operations = _operations(server.url)
    for operation in operations:
        fuzzed += _no_server_error(operation, server.url, mode)
        if "{agent_id}" in operation.path:
            agent = _an_agent(server.url)  # anew: a fuzzed DELETE may remove it
            _no_server_error(operation, server.url, mode, path_parameters={"agent_id": agent})
    assert fuzzed >= len(operations) // 2  # most operations take some input to vary


def test_nul_characters_are_stored_and_searched_not_a_server_error(server: ThreadServer) -> None:
    body = {"memory_blocks": [{"label": "human", "value": "Ann\u0000Lee"}]}
    made = httpx.post(f"{server.url}/v1/agents/", json=body, timeout=30)
    assert made.status_code == 200, made.text
    agent = made.json()["id"]
    human = httpx.get(f"{server.url}/v1/agents/{agent}/core-memory/blocks/human", timeout=30)
    assert human.json()["value"] == "Ann\ufffdLee"
    passage = {"text": "likes\u0000tea"}
    added = httpx.post(f"{server.url}/v1/agents/{agent}/archival-memory", json=passage, timeout=30)
    assert added.status_code == 200, added.text
    found = httpx.get(
        f"{server.url}/v1/agents/{agent}/archival-memory/search",
        params={"query": "tea\u0000"},
        timeout=30,
    )
    assert found.status_code == 200, found.text
    missing = httpx.get(f"{server.url}/v1/agents/{agent}/core-memory/blocks/a%00b", timeout=30)
    assert missing.status_code == 404
