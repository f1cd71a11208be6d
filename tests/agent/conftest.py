from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from botmem.app import App
from botmem.config import Settings
from botmem.stores.base import Stores
from botmem.stores.memory import memory_stores
from botmem.testing import FakeAdapter, ScriptedLLM


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


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
async def bot(settings: Settings) -> AsyncIterator[Bot]:
    llm = ScriptedLLM()
    app = await App.open(settings, llm=llm, stores=memory_stores())
    chat = FakeAdapter()
    await app.start([chat])
    yield Bot(app, llm, chat)
    await app.aclose()
