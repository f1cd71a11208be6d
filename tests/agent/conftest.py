from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from botmem.app import App
from botmem.config import Settings
from botmem.stores.base import Stores
from botmem.stores.memory import memory_stores
from botmem.testing import FakeAdapter, ScriptedLLM
from botmem.testing.embeddings import HashEmbedder


@dataclass
class Bot:
    app: App
    llm: ScriptedLLM
    chat: FakeAdapter

    @property
    def stores(self) -> Stores:
        return self.app.stores

    async def block(self, user: str, label: str) -> str:
        block = await self.stores.blocks.get(f"fake:{user}", label)
        assert block is not None
        return block.value


def make_settings(**sections: dict[str, object]) -> Settings:
    data: dict[str, object] = {"llm": {"model": "scripted/test"}}
    data.update(sections)
    return Settings.model_validate(data)


async def open_app(settings: Settings, llm: ScriptedLLM, **parts: Any) -> App:
    """An App on in-memory stores with the hash embedder (fast, deterministic)."""
    parts.setdefault("stores", memory_stores())
    return await App.open(settings, llm=llm, embedder=HashEmbedder(), **parts)


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def bot(settings: Settings) -> AsyncIterator[Bot]:
    llm = ScriptedLLM()
    app = await open_app(settings, llm)
    chat = FakeAdapter()
    await app.start([chat])
    yield Bot(app, llm, chat)
    await app.aclose()
