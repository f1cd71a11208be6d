"""SqliteDatabase: one inline connection shared by reads and writes, never a dirty read."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from botmem.stores.sql.engine import Conn, open_database


async def test_a_read_waits_for_a_write_that_yields_instead_of_reading_it_half_done(
    tmp_path: Path,
) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'x.db'}")

    async def create(conn: Conn) -> None:
        await conn.execute(text("CREATE TABLE t (v TEXT)"))

    await db.write(create)
    inserted = asyncio.Event()

    async def slow_write(conn: Conn) -> None:
        await conn.execute(text("INSERT INTO t VALUES ('a')"))
        inserted.set()
        await asyncio.sleep(0.05)  # the stores never do this; a future store might
        await conn.execute(text("INSERT INTO t VALUES ('b')"))

    async def read_during() -> list[str]:
        await inserted.wait()
        async with db.read() as conn:
            return [row.v for row in await conn.execute(text("SELECT v FROM t ORDER BY v"))]

    _, seen = await asyncio.gather(db.write(slow_write), read_during())
    assert seen == ["a", "b"]  # all of the write, once committed; never just "a"
    await db.close()


async def test_a_read_inside_a_write_is_part_of_it(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'x.db'}")

    async def work(conn: Conn) -> int:
        await conn.execute(text("CREATE TABLE t (v TEXT)"))
        await conn.execute(text("INSERT INTO t VALUES ('a')"))
        async with db.read() as inner:  # e.g. a store method called inside a transaction
            return len((await inner.execute(text("SELECT v FROM t"))).all())

    assert await db.write(work) == 1
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1
    await db.close()
