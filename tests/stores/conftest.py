"""The `backend` fixture: every store contract test runs on memory, SQLite and PostgreSQL.

PostgreSQL tests each get a fresh database (created from the server at
BOTMEM_TEST_POSTGRES_URL, default below) so they never see each other's rows or those of
other suites sharing the server; they are skipped when no server is reachable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from botmem.stores.base import Stores
from botmem.stores.memory import memory_stores
from botmem.stores.sql import open_sql_stores

PG_URL = os.environ.get(
    "BOTMEM_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class TickClock:
    """A clock that moves one second forward on every reading: distinct, ordered stamps."""

    now: datetime = START
    step: timedelta = timedelta(seconds=1)

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


@dataclass
class Backend:
    name: str
    url: str | None  # None: in-memory
    clock: TickClock = field(default_factory=TickClock)
    _memory: Stores | None = None

    async def open(self) -> Stores:
        """Open the stores; for SQL a second call opens the same database again."""
        if self.url is None:
            self._memory = self._memory or memory_stores(self.clock)
            return self._memory
        return await open_sql_stores(self.url, self.clock)


async def _pg_connect(database: str) -> Any:
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(PG_URL)
    return await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=database,
        timeout=3,
    )


async def _fresh_pg_database() -> AsyncIterator[str]:
    from sqlalchemy.engine import make_url

    base = make_url(PG_URL)
    try:
        admin = await _pg_connect(base.database or "postgres")
    except (OSError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL not reachable at {base.render_as_string()}: {exc}")
    name = f"botmem_test_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield base.set(database=name).render_as_string(hide_password=False)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _backend(name: str, tmp_path: Path) -> AsyncIterator[Backend]:
    if name == "memory":
        yield Backend("memory", None)
    elif name == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'data' / 'botmem.db'}")
    else:
        async for url in _fresh_pg_database():
            yield Backend("postgres", url)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for made in _backend(request.param, tmp_path):
        yield made


@pytest.fixture(params=["sqlite", "postgres"])
async def sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Only the backends with a schema (for migration tests)."""
    async for made in _backend(request.param, tmp_path):
        yield made


@pytest.fixture
async def stores(backend: Backend) -> AsyncIterator[Stores]:
    opened = await backend.open()
    yield opened
    await opened.aclose()
