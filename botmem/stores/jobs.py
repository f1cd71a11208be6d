"""Scheduled jobs as botmem stores them: specs, not pickled callables.

The scheduler registers every active job with APScheduler at start, so jobs survive restarts.
A job's `next_run_at` is botmem's own record of when it is due: after downtime, a job whose
time has passed is found here and handled by the kind's misfire policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from botmem.types import AgentKey

JobKind = Literal["checkin", "consolidate"]
JobStatus = Literal["active", "done", "cancelled"]


@dataclass(frozen=True)
class Job:
    agent_key: AgentKey
    kind: JobKind
    trigger: str
    """``at:<ISO 8601 with offset>`` (once) or ``cron:<5-field crontab>`` (repeating)."""
    timezone: str
    """IANA name the trigger is read in (the person's timezone)."""
    next_run_at: datetime | None
    payload: dict[str, Any] = field(default_factory=dict)
    """Kind-specific: a check-in's note and the conversation to speak in."""
    created_at: datetime | None = None
    last_run_at: datetime | None = None
    status: JobStatus = "active"
    id: int | None = None


class JobStore(Protocol):
    async def add(self, job: Job) -> Job:
        """Store a new job; returns it with its id and created_at."""
        ...

    async def get(self, job_id: int) -> Job | None: ...

    async def active(self, agent_key: AgentKey | None = None) -> list[Job]:
        """Active jobs (of one agent, or all), by id."""
        ...

    async def due(self, now: datetime) -> list[Job]:
        """Active jobs whose next run is at or before `now`, by id."""
        ...

    async def fired(
        self, job_id: int, run_at: datetime, next_run_at: datetime | None, *, ran: bool = True
    ) -> None:
        """Record that the job's time passed at `run_at`; a job without a next run becomes
        `done`. `ran` False: the policy skipped it (not counted by runs_since)."""
        ...

    async def cancel(self, job_id: int) -> bool:
        """Cancel an active job; False when it was not active."""
        ...

    async def runs_since(self, agent_key: AgentKey, kind: JobKind, since: datetime) -> int:
        """How many runs of the agent's jobs of this kind were recorded at or after `since`."""
        ...

    async def delete_agent(self, agent_key: AgentKey) -> None: ...
