"""`botmem serve` on 127.0.0.1 (port 0) over a SQLite file, with the fake OpenAI server as
the LLM, driven by Letta's own client (`letta_client.AsyncLetta`).

The client validates every response against Letta's models (strict response validation),
so a field botmem leaves out or types wrongly fails the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from letta_client import AsyncLetta

from botmem.app import App
from botmem.server.api_adapter import ApiAdapter
from botmem.server.serve import http_api
from botmem.testing.embeddings import HashEmbedder
from botmem.testing.openai_server import FakeOpenAIServer
from tests.helpers import make_settings

API_KEY = "test-key-123"


@dataclass
class Served:
    url: str
    app: App
    llm: FakeOpenAIServer
    client: AsyncLetta


def server_settings(tmp_path: Path, llm: FakeOpenAIServer, **sections: Any) -> Any:
    return make_settings(
        llm={"model": "openai/test-model", "api_base": llm.base_url, "max_retries": 0},
        storage={"data_dir": str(tmp_path / "data"), "vector_cache": 0},
        summarization={"idle_minutes": 0},
        limits={"messages_per_minute": 0},
        **sections,
    )


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
async def served(tmp_path: Path, fake_llm: FakeOpenAIServer) -> AsyncIterator[Served]:
    async with serve_at(tmp_path, fake_llm) as served:
        yield served


def serve_at(tmp_path: Path, llm: FakeOpenAIServer, **sections: Any) -> Any:
    """`async with serve_at(...) as served`: a server on the data under `tmp_path`."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def running() -> AsyncIterator[Served]:
        settings = server_settings(tmp_path, llm, **sections)
        adapter = ApiAdapter()
        async with await App.open(settings, embedder=HashEmbedder()) as app:
            await app.start([adapter])
            async with http_api(app, adapter, host="127.0.0.1", port=0, key=API_KEY) as url:
                client = AsyncLetta(
                    base_url=url, api_key=API_KEY, max_retries=0, _strict_response_validation=True
                )
                try:
                    yield Served(url, app, llm, client)
                finally:
                    await client.close()
            await app.shutdown(5)

    return running()
