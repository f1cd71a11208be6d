from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from botmem.app import App
from botmem.config import Settings
from botmem.stores.base import Stores
from botmem.testing import FakeAdapter, ScriptedLLM
from tests.helpers import make_settings, open_app


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
