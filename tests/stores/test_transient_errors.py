"""Which database failures a turn waits out (transient) and which are bugs, on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from botmem.stores.base import is_transient
from botmem.stores.sql import open_sql_stores
from tests.stores.conftest import _fresh_pg_database


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async for url in _fresh_pg_database():
        yield url


async def _select_one(engine: AsyncEngine) -> BaseException:
    with pytest.raises(Exception) as caught:
        async with engine.connect() as conn:
            await conn.execute(text("select 1"))
    await engine.dispose()
    return caught.value


async def test_too_many_clients_is_transient(pg_url: str) -> None:
    role = f"botmem_full_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0"))
    try:
        url = make_url(pg_url).set(username=role).render_as_string(hide_password=False)
        failure = await _select_one(create_async_engine(url))
        assert "too many connections" in str(failure)
        assert is_transient(failure)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP ROLE {role}"))
        await admin.dispose()


async def test_a_server_that_is_down_is_transient_and_a_missing_database_is_not(
    pg_url: str,
) -> None:
    down = make_url(pg_url).set(port=1).render_as_string(hide_password=False)
    assert is_transient(await _select_one(create_async_engine(down)))
    missing = make_url(pg_url).set(database="botmem_no_such_database")
    failure = await _select_one(create_async_engine(missing.render_as_string(False)))
    assert "does not exist" in str(failure)
    assert not is_transient(failure)


async def test_the_pool_never_opens_more_connections_than_pool_size(pg_url: str) -> None:
    stores = await open_sql_stores(pg_url, pool_size=2)
    database = make_url(pg_url).database
    admin = create_async_engine(make_url(pg_url).set(database="postgres"))
    try:
        await asyncio.gather(*(stores.inbox.unfinished() for _ in range(20)))
        async with admin.connect() as conn:
            opened = await conn.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db"),
                {"db": database},
            )
        assert opened == 2
    finally:
        await stores.close()
        await admin.dispose()
