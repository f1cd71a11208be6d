"""Helpers shared by the test packages: an App on in-memory stores with a scripted LLM."""

from __future__ import annotations

from typing import Any

from botmem.app import App
from botmem.config import Settings
from botmem.stores.memory import memory_stores
from botmem.testing import ScriptedLLM
from botmem.testing.embeddings import HashEmbedder


def make_settings(**sections: dict[str, object]) -> Settings:
    data: dict[str, object] = {"llm": {"model": "scripted/test"}}
    data.update(sections)
    return Settings.model_validate(data)


async def open_app(settings: Settings, llm: ScriptedLLM, **parts: Any) -> App:
    """An App on in-memory stores with the hash embedder (fast, deterministic)."""
    parts.setdefault("stores", memory_stores(parts.get("clock")))  # one clock for all stamps
    return await App.open(settings, llm=llm, embedder=HashEmbedder(), **parts)
