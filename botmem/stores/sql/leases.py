"""SqlLeaseStore: leases as rows, taken with one conditional upsert.

Taking a lease is ``INSERT ... ON CONFLICT (name) DO UPDATE ... WHERE expired or ours``: the
database serializes it on the row, so of two processes taking the same lease at once exactly
one gets a row back. A lease outlives any transaction (a turn waits seconds on the LLM), which
is why this is a row and not a held row lock (FOR UPDATE) or a session advisory lock: those
pin a connection per agent in flight and vanish with a dropped connection mid-turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from botmem.stores.leases import WallClock, wall_clock
from botmem.stores.sql.engine import Conn, Database
from botmem.stores.sql.schema import leases


def _acquire_statement(dialect: Any) -> Any:
    insert = sqlite.insert if dialect.name == "sqlite" else postgresql.insert
    stmt = insert(leases).values(
        name=bindparam("name"), holder=bindparam("holder"), expires_at=bindparam("until")
    )
    free = (leases.c.expires_at <= bindparam("now")) | (leases.c.holder == bindparam("holder"))
    return stmt.on_conflict_do_update(
        index_elements=[leases.c.name],
        set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at},
        where=free,
    ).returning(leases.c.name)


class SqlLeaseStore:
    def __init__(self, db: Database, clock: WallClock = wall_clock):
        self._db = db
        self._clock = clock
        self._acquire = _acquire_statement(db.engine.dialect)

    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        now = self._clock()
        params = {"name": name, "holder": holder, "now": now, "until": now + _seconds(ttl)}

        async def work(conn: Conn) -> bool:
            return (await conn.execute(self._acquire, params)).first() is not None

        return await self._db.write(work)

    async def renew(self, names: Sequence[str], holder: str, ttl: float) -> set[str]:
        if not names:
            return set()
        stmt = (
            update(leases)
            .where(leases.c.holder == holder, leases.c.name.in_(list(names)))
            .values(expires_at=self._clock() + _seconds(ttl))
            .returning(leases.c.name)
        )

        async def work(conn: Conn) -> set[str]:
            return {row.name for row in await conn.execute(stmt)}

        return await self._db.write(work)

    async def release(self, names: Sequence[str], holder: str) -> None:
        if not names:
            return
        stmt = delete(leases).where(leases.c.holder == holder, leases.c.name.in_(list(names)))

        async def work(conn: Conn) -> None:
            await conn.execute(stmt)

        await self._db.write(work)

    async def holder(self, name: str) -> str | None:
        query = select(leases.c.holder).where(
            leases.c.name == name, leases.c.expires_at > self._clock()
        )
        async with self._db.read() as conn:
            return (await conn.execute(query)).scalar_one_or_none()


def _seconds(ttl: float) -> timedelta:
    return timedelta(seconds=ttl)
