"""Databases several botmem processes (here: several Apps) share: a SQLite file, PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.stores.conftest import _fresh_pg_database


@pytest.fixture(params=["sqlite", "postgres"])
async def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    async for url in _fresh_pg_database():
        yield url


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async for url in _fresh_pg_database():
        yield url
