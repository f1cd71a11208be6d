"""SqlJobStore: scheduled jobs as specs, and the log of their runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, select, update

from botmem.stores.base import Clock
from botmem.stores.jobs import Job, JobKind
from botmem.stores.sql.engine import Conn, Database
from botmem.stores.sql.schema import job_runs, jobs
from botmem.types import AgentKey


def _job(row: Any) -> Job:
    return Job(
        id=row.id,
        agent_key=row.agent_key,
        kind=row.kind,
        trigger=row.trigger,
        timezone=row.timezone,
        next_run_at=row.next_run_at,
        payload=dict(row.payload or {}),
        created_at=row.created_at,
        last_run_at=row.last_run_at,
        status=row.status,
    )


class SqlJobStore:
    def __init__(self, db: Database, clock: Clock):
        self._db = db
        self._clock = clock

    async def add(self, job: Job) -> Job:
        values = {
            "agent_key": job.agent_key,
            "kind": job.kind,
            "trigger": job.trigger,
            "timezone": job.timezone,
            "payload": job.payload,
            "status": "active",
            "created_at": self._clock(),
            "next_run_at": job.next_run_at,
            "last_run_at": job.last_run_at,
        }

        async def work(conn: Conn) -> Job:
            result = await conn.execute(jobs.insert().values(**values).returning(jobs))
            return _job(result.one())  # read back: times in UTC, the payload as JSON gives it

        return await self._db.write(work)

    async def get(self, job_id: int) -> Job | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
        return _job(row) if row else None

    async def active(self, agent_key: AgentKey | None = None) -> list[Job]:
        query = select(jobs).where(jobs.c.status == "active").order_by(jobs.c.id)
        if agent_key is not None:
            query = query.where(jobs.c.agent_key == agent_key)
        async with self._db.read() as conn:
            return [_job(row) for row in await conn.execute(query)]

    async def due(self, now: datetime) -> list[Job]:
        query = (
            select(jobs)
            .where(jobs.c.status == "active", jobs.c.next_run_at <= now)
            .order_by(jobs.c.id)
        )
        async with self._db.read() as conn:
            return [_job(row) for row in await conn.execute(query)]

    async def fired(
        self, job_id: int, run_at: datetime, next_run_at: datetime | None, *, ran: bool = True
    ) -> None:
        values: dict[str, Any] = {"last_run_at": run_at, "next_run_at": next_run_at}
        if next_run_at is None:
            # Decided inside the UPDATE, so a cancel that raced with the run stays a cancel.
            values["status"] = case((jobs.c.status == "active", "done"), else_=jobs.c.status)
        stmt = (
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(**values)
            .returning(jobs.c.agent_key, jobs.c.kind)
        )

        async def work(conn: Conn) -> None:
            job = (await conn.execute(stmt)).first()
            if job is None or not ran:
                return  # deleted meanwhile (its agent wiped), or skipped: no run to count
            await conn.execute(
                job_runs.insert().values(
                    job_id=job_id, agent_key=job.agent_key, kind=job.kind, run_at=run_at
                )
            )

        await self._db.write(work)

    async def cancel(self, job_id: int) -> bool:
        stmt = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status == "active")
            .values(status="cancelled")
            .returning(jobs.c.id)
        )

        async def work(conn: Conn) -> bool:
            return (await conn.execute(stmt)).first() is not None

        return await self._db.write(work)

    async def runs_since(self, agent_key: AgentKey, kind: JobKind, since: datetime) -> int:
        query = select(func.count()).where(
            job_runs.c.agent_key == agent_key,
            job_runs.c.kind == kind,
            job_runs.c.run_at >= since,
        )
        async with self._db.read() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def delete_agent(self, agent_key: AgentKey) -> None:
        async def work(conn: Conn) -> None:
            await conn.execute(delete(job_runs).where(job_runs.c.agent_key == agent_key))
            await conn.execute(delete(jobs).where(jobs.c.agent_key == agent_key))

        await self._db.write(work)
