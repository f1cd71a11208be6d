"""The async engine and how botmem opens transactions on it.

SQLite needs care: a deferred transaction that reads and then writes fails with
"database is locked" when another connection committed in between (WAL snapshot), and the
busy timeout does not help there. So write transactions on SQLite start with
``BEGIN IMMEDIATE`` (they take the write lock before reading), and a write that still meets
a locked database is retried a bounded number of times.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from botmem.errors import StoreError

T = TypeVar("T")

_BEGIN_OPTION = "botmem_begin"
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)
LOCKED_ATTEMPTS = 20


def create_engine(url: str) -> AsyncEngine:
    """An AsyncEngine for `url`; for SQLite the file's directory is created and pragmas set."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url)
    event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    event.listen(engine.sync_engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Stop the driver from emitting its own (deferred) BEGIN: _on_sqlite_begin decides.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(_BEGIN_OPTION, "")
    conn.exec_driver_sql(f"BEGIN {mode}".strip())


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def is_locked(exc: OperationalError) -> bool:
    """SQLite's busy/locked errors: another writer held the database; trying again helps."""
    text = str(exc.orig).lower()
    return "database is locked" in text or "database table is locked" in text


async def backoff(attempt: int) -> None:
    """A short jittered sleep so that retrying writers do not move in lockstep."""
    await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))


class Database:
    """The engine plus two ways in: `read` (a plain connection) and `write` (a transaction)."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.sqlite = is_sqlite(engine)
        self._writer = (
            engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"}) if self.sqlite else engine
        )

    def read(self) -> AsyncConnection:
        """``async with db.read() as conn``: a connection for queries (rolled back at exit)."""
        return self.engine.connect()

    async def write(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `work` in one write transaction, committed when it returns.

        Retried from the start while SQLite reports a locked database, so `work` must not
        have effects outside the transaction. Other errors (IntegrityError, NotFoundError,
        whatever `work` raises) roll back and propagate.
        """
        for attempt in range(LOCKED_ATTEMPTS):
            try:
                async with self._writer.begin() as conn:
                    return await work(conn)
            except OperationalError as exc:
                if not (self.sqlite and is_locked(exc)):
                    raise
            await backoff(attempt)
        raise StoreError(f"database stayed locked after {LOCKED_ATTEMPTS} attempts")

    async def close(self) -> None:
        await self.engine.dispose()
