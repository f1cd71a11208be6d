"""The database botmem opens, and how it opens transactions on it.

SQLite runs on the event loop's own thread through the standard `sqlite3` module: a
transaction on a local WAL file takes tens of microseconds, while the same transaction
through an async driver (a thread hop per call) took 1.4 ms, and a turn makes about twenty.
In-process writers take turns on an asyncio lock, so the loop never blocks waiting for its
own write lock; another process holding it costs at most `SQLITE_BUSY_MS` per attempt.
Reads open no transaction: a read block sees what is committed when each of its statements
runs (in-process writes cannot interleave with it: nothing in it yields).

SQLite also needs care: a deferred transaction that reads and then writes fails with
"database is locked" when another connection committed in between (WAL snapshot), and the
busy timeout does not help there. So write transactions on SQLite start with
``BEGIN IMMEDIATE`` (they take the write lock before reading), and a write that still meets
a locked database is retried a bounded number of times.

Other databases (PostgreSQL via asyncpg) use SQLAlchemy's async engine.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, CursorResult, Dialect, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.base import Executable

from botmem.errors import StoreError

T = TypeVar("T")

_BEGIN_OPTION = "botmem_begin"
_AUTOCOMMIT = "none"
"""The begin mode of reads: no BEGIN, so every statement reads the newest commit."""
SQLITE_BUSY_MS = 50
"""How long one attempt waits for another process's write lock (the loop waits with it)."""
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={SQLITE_BUSY_MS}",
)
LOCKED_ATTEMPTS = 100
"""Attempts at a write while another process holds SQLite's lock (about 6 s in all)."""


class InlineConnection:
    """A sync SQLite connection behind the few AsyncConnection methods the stores use."""

    def __init__(self, sync: Connection):
        self._sync = sync
        self.dialect: Dialect = sync.dialect

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]:
        return self._sync.execute(statement, parameters)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> CursorResult[Any]:
        return self._sync.exec_driver_sql(statement, parameters)

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        return fn(self._sync)


Conn: TypeAlias = AsyncConnection | InlineConnection
"""What a store's query code gets: `await conn.execute(...)` on either database."""


class SqliteDatabase:
    """SQLite via `sqlite3`, run inline on one long-lived connection.

    One connection keeps SQLite's page cache warm: a second connection must drop its cache
    whenever the other one committed, and re-read pages on every statement (~0.2 ms each
    under load). Reads run outside any transaction (each statement sees the newest commit);
    a write is one ``BEGIN IMMEDIATE`` transaction. The stores' writes never yield, but a read
    that finds another task's write open waits for it rather than read it half done.
    """

    sqlite = True

    def __init__(self, engine: Engine):
        self.engine = engine
        self._conn: Connection | None = None
        self._writer: asyncio.Task[Any] | None = None
        """The task whose write transaction is open, if any."""
        self._write_turn = asyncio.Lock()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[InlineConnection]:
        """``async with db.read() as conn``: a connection for queries."""
        if self._writer is not None and self._writer is asyncio.current_task():
            yield InlineConnection(self._connection())  # from inside a write: part of it
            return
        if self._writer is not None:  # a write that awaited something: never read it half done
            async with self._write_turn:
                pass
        conn = self._connection()
        conn.execution_options(**{_BEGIN_OPTION: _AUTOCOMMIT})
        try:
            yield InlineConnection(conn)
        finally:
            conn.rollback()  # ends SQLAlchemy's idea of a transaction; SQLite had none

    async def write(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `work` in one write transaction, committed when it returns.

        Retried from the start while another process holds the database, so `work` must not
        have effects outside the transaction. Other errors (IntegrityError, NotFoundError,
        whatever `work` raises) roll back and propagate.
        """
        async with self._write_turn:
            for attempt in range(LOCKED_ATTEMPTS):
                conn = self._connection()
                conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
                self._writer = asyncio.current_task()
                try:
                    with conn.begin():
                        return await work(InlineConnection(conn))
                except OperationalError as exc:
                    conn.rollback()  # a failed BEGIN leaves the connection half-begun
                    if not is_locked(exc):
                        raise
                finally:
                    self._writer = None
                await backoff(attempt)
        raise StoreError(f"database stayed locked after {LOCKED_ATTEMPTS} attempts")

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.invalidated:
            self._conn = self.engine.connect()
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.engine.dispose()


class AsyncDatabase:
    """A server database through SQLAlchemy's async engine (PostgreSQL via asyncpg)."""

    sqlite = False

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        # Reads send no BEGIN and no ROLLBACK: 1 round trip instead of 3 (a read took 0.50
        # instead of 0.83 ms here). At READ COMMITTED each statement of a transaction sees
        # the newest commits anyway, so a read block sees the same rows either way.
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT")

    def read(self) -> AsyncConnection:
        """``async with db.read() as conn``: a connection for queries (no transaction)."""
        return self._reads.connect()

    async def write(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `work` in one transaction, committed when it returns; errors roll back."""
        async with self.engine.begin() as conn:
            return await work(conn)

    async def close(self) -> None:
        await self.engine.dispose()


Database: TypeAlias = SqliteDatabase | AsyncDatabase


def open_database(url: str, pool_size: int = 10) -> Database:
    """The database at `url`; for SQLite the file's directory is created and pragmas set.

    ``sqlite:///path`` and ``sqlite+aiosqlite:///path`` both open the file with `sqlite3`.
    A server database gets at most `pool_size` connections: a turn that finds them all in
    use waits for one (a transient error after 30 s) instead of overflowing the server.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return AsyncDatabase(create_async_engine(url, pool_size=pool_size, max_overflow=0))
    return SqliteDatabase(_sqlite_engine(parsed))


def _sqlite_engine(url: URL) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_sync_engine(url.set(drivername="sqlite"))
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
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
    if mode != _AUTOCOMMIT:
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


def is_locked(exc: OperationalError) -> bool:
    """SQLite's busy/locked errors: another writer held the database; trying again helps."""
    text = str(exc.orig).lower()
    return "database is locked" in text or "database table is locked" in text


async def backoff(attempt: int) -> None:
    """A short jittered sleep so that retrying writers do not move in lockstep."""
    await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
