"""MemoryJobStore: scheduled jobs and their runs in process memory, same contract as SQL."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from botmem.stores.base import Clock
from botmem.stores.jobs import Job, JobKind
from botmem.types import AgentKey


def _as_utc(value: datetime) -> datetime:
    """Aware UTC, as the SQL stores return it; naive values are taken to be UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _maybe_utc(value: datetime | None) -> datetime | None:
    return None if value is None else _as_utc(value)


def _json_copy(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as SQL gives it back (through JSON): callers never share the stored dict."""
    copied: dict[str, Any] = json.loads(json.dumps(payload))
    return copied


@dataclass(frozen=True)
class _Run:
    job_id: int
    agent_key: AgentKey
    kind: JobKind
    run_at: datetime


class MemoryJobStore:
    def __init__(self, clock: Clock):
        self._clock = clock
        self._jobs: dict[int, Job] = {}  # in id order
        self._runs: list[_Run] = []
        self._next_id = 1

    def _out(self, job: Job) -> Job:
        return replace(job, payload=_json_copy(job.payload))

    async def add(self, job: Job) -> Job:
        stored = replace(
            job,
            id=self._next_id,
            payload=_json_copy(job.payload),
            created_at=_as_utc(self._clock()),
            next_run_at=_maybe_utc(job.next_run_at),
            last_run_at=_maybe_utc(job.last_run_at),
            status="active",
        )
        self._jobs[self._next_id] = stored
        self._next_id += 1
        return self._out(stored)

    async def get(self, job_id: int) -> Job | None:
        job = self._jobs.get(job_id)
        return self._out(job) if job else None

    async def active(self, agent_key: AgentKey | None = None) -> list[Job]:
        return [
            self._out(job)
            for job in self._jobs.values()
            if job.status == "active" and agent_key in (None, job.agent_key)
        ]

    async def due(self, now: datetime) -> list[Job]:
        return [j for j in await self.active() if j.next_run_at and j.next_run_at <= now]

    async def fired(
        self, job_id: int, run_at: datetime, next_run_at: datetime | None, *, ran: bool = True
    ) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return  # deleted meanwhile (its agent wiped): leave no trace
        run_at = _as_utc(run_at)
        finished = next_run_at is None and job.status == "active"
        self._jobs[job_id] = replace(
            job,
            last_run_at=run_at,
            next_run_at=_maybe_utc(next_run_at),
            status="done" if finished else job.status,
        )
        if ran:
            self._runs.append(_Run(job_id, job.agent_key, job.kind, run_at))

    async def cancel(self, job_id: int) -> bool:
        job = self._jobs.get(job_id)
        if job is None or job.status != "active":
            return False
        self._jobs[job_id] = replace(job, status="cancelled")
        return True

    async def runs_since(self, agent_key: AgentKey, kind: JobKind, since: datetime) -> int:
        start = _as_utc(since)
        return sum(
            1
            for run in self._runs
            if run.agent_key == agent_key and run.kind == kind and run.run_at >= start
        )

    async def delete_agent(self, agent_key: AgentKey) -> None:
        self._runs = [run for run in self._runs if run.agent_key != agent_key]
        self._jobs = {i: job for i, job in self._jobs.items() if job.agent_key != agent_key}
