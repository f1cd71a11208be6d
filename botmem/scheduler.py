"""Scheduled jobs: botmem keeps the specs (JobStore), APScheduler is the timer.

Each active job is armed as an APScheduler date trigger at its stored `next_run_at`; after a
run the next time is computed (from the crontab, for repeating jobs), stored, and armed
again. So the database is the one truth, restarts lose nothing and nothing is pickled.

A due check-in becomes an inbound event of kind "scheduled" with the message id
``job:<id>:<due time>``: it goes through the inbox like a user message (stored first, one turn
at a time per agent, replayed after a crash), and a job fired twice around a crash is dropped
as a duplicate. Misfires after downtime: a check-in up to `[checkins] max_delay_hours` late is
sent with a note saying how late it is; later ones are skipped and logged. The missed runs of
a repeating job coalesce into its most recent one (that one is judged by the same rule), then
it continues on schedule.

Delays are measured on botmem's clock, so a test's FrozenClock drives schedules: advance it and
call `run_due()`. A timer that wakes before the clock says the job is due arms itself again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from botmem.adapter import TurnTask
from botmem.config import Settings
from botmem.crontab import cron_trigger
from botmem.errors import ToolError
from botmem.events import InboundMessage
from botmem.schedules import (
    day_start,
    latest_due,
    next_run,
    parse_when,
    upcoming,
    within_hours,
)
from botmem.stores.base import Stores
from botmem.stores.jobs import Job, JobStore
from botmem.types import AgentKey

log = logging.getLogger(__name__)
Submit = Callable[[InboundMessage], Awaitable[TurnTask | None]]
Consolidate = Callable[[AgentKey, str], Awaitable[None]]
Clock = Callable[[], datetime]
MAX_ACTIVE_CHECKINS = 50
MAX_NOTE_CHARS = 2000
HOURS_CHECKED_RUNS = 50
"""A repeating check-in is refused when none of its next this-many runs is in allowed hours."""
CONSOLIDATE_DELAY = timedelta(minutes=1)
"""A requested consolidation waits this long, so a burst of edits asks for one pass."""


class Scheduler:
    def __init__(
        self,
        stores: Stores,
        submit: Submit,
        consolidate: Consolidate,
        settings: Settings,
        clock: Clock,
    ):
        self._jobs: JobStore = stores.jobs
        self._agents = stores.agents
        self._submit = submit
        self._consolidate = consolidate
        self._settings = settings
        self._clock = clock
        self._timer: AsyncIOScheduler | None = None
        self._running: set[int] = set()  # job ids being run: a timer and run_due never both
        self._planning: set[AgentKey] = set()  # agents whose consolidation is being planned

    async def start(self, maintenance: Callable[[], Awaitable[object]] | None = None) -> None:
        """Catch up on what came due while the bot was down, then arm every active job."""
        self._timer = AsyncIOScheduler(
            timezone=ZoneInfo("UTC"), job_defaults={"coalesce": True, "max_instances": 1}
        )
        self._timer.start()
        fired = await self.run_due()
        active = await self._jobs.active()
        for job in active:
            self._arm(job)
        self._arm_periodic(maintenance)
        log.info("scheduler started: %d job(s) armed, %d caught up", len(active), fired)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.shutdown(wait=False)
            self._timer = None

    async def add(self, job: Job) -> Job:
        stored = await self._jobs.add(job)
        self._arm(stored)
        log.info(
            "job %s (%s) for %s: next run %s", stored.id, job.kind, job.agent_key, job.next_run_at
        )
        return stored

    async def cancel(self, job_id: int) -> bool:
        cancelled = await self._jobs.cancel(job_id)
        if cancelled and self._timer is not None and self._timer.get_job(_timer_id(job_id)):
            self._timer.remove_job(_timer_id(job_id))
        if cancelled:
            log.info("job %d cancelled", job_id)
        return cancelled

    async def plan_checkin(
        self, agent_key: AgentKey, when: str, note: str, tz: ZoneInfo, conversation: dict[str, Any]
    ) -> Job:
        """A check-in for the agent, within the policy; ToolError (for the model) otherwise."""
        policy = self._settings.checkins
        if not policy.enabled:
            raise ToolError("check-ins are switched off on this bot; tell the person")
        if not note.strip():
            raise ToolError("note is empty: say what to do or ask at that time")
        if len(note) > MAX_NOTE_CHARS:
            raise ToolError(f"note is {len(note):,} characters; keep it under {MAX_NOTE_CHARS:,}")
        if len(await self.checkins(agent_key)) >= MAX_ACTIVE_CHECKINS:
            raise ToolError(
                f"there are already {MAX_ACTIVE_CHECKINS} check-ins planned; cancel some first"
            )
        trigger, first = parse_when(when, tz, self._clock())
        times = upcoming(trigger, tz, first, HOURS_CHECKED_RUNS)
        if not any(within_hours(t, tz, policy.allowed_hours, policy.quiet_hours) for t in times):
            raise ToolError(
                f"check-ins may only be sent within the hours {policy.allowed_hours}"
                + (f" outside quiet hours {policy.quiet_hours}" if policy.quiet_hours else "")
                + " (the bot's policy); ask the person for another time"
            )
        payload = {"note": note.strip(), "conversation": conversation}
        return await self.add(Job(agent_key, "checkin", trigger, tz.key, first, payload))

    async def checkins(self, agent_key: AgentKey | None) -> list[Job]:
        return [job for job in await self._jobs.active(agent_key) if job.kind == "checkin"]

    async def cancel_checkin(self, agent_key: AgentKey | None, job_id: int) -> bool:
        job = await self._jobs.get(job_id)
        if job is None or job.kind != "checkin" or job.status != "active":
            return False
        if agent_key is not None and job.agent_key != agent_key:
            return False  # someone else's: as if it did not exist
        return await self.cancel(job_id)

    async def request_consolidation(self, agent_key: AgentKey, reason: str) -> bool:
        """Plan one consolidation pass soon, unless one is planned already; whether planned."""
        if not self._settings.consolidation.enabled or agent_key in self._planning:
            return False
        self._planning.add(agent_key)  # several edits of one turn ask at once: plan one pass
        try:
            planned = await self._jobs.active(agent_key)
            if any(job.kind == "consolidate" for job in planned):
                return False
            due = self._clock() + CONSOLIDATE_DELAY
            trigger = f"at:{due.isoformat()}"
            await self.add(Job(agent_key, "consolidate", trigger, "UTC", due, {"reason": reason}))
            return True
        finally:
            self._planning.discard(agent_key)

    async def run_due(self) -> int:
        """Run every active job whose time has come; returns how many ran."""
        due = await self._jobs.due(self._clock())
        for job in due:
            await self._run(job)
        return len(due)

    async def _fire(self, job_id: int) -> None:
        """The timer callback: run the job if it is still active and due."""
        job = await self._jobs.get(job_id)
        if job is None or job.status != "active" or job.next_run_at is None:
            return  # cancelled, done or wiped since it was armed
        if job.next_run_at > self._clock():
            self._arm(job)  # woke early by botmem's clock
            return
        await self._run(job)

    async def _run(self, job: Job) -> None:
        assert job.id is not None and job.next_run_at is not None
        if job.id in self._running:
            return
        self._running.add(job.id)
        now = self._clock()
        due = latest_due(job.trigger, ZoneInfo(job.timezone), job.next_run_at, now)
        ran = True
        try:
            if job.kind == "checkin":
                ran = await self._checkin(job, due, now)
            else:
                await self._consolidate(job.agent_key, str(job.payload.get("reason", "")))
        finally:
            following = next_run(job.trigger, ZoneInfo(job.timezone), max(now, due))
            await self._jobs.fired(job.id, now, following, ran=ran)
            self._running.discard(job.id)
            if following is not None:
                self._arm(job, following)

    async def _checkin(self, job: Job, due: datetime, now: datetime) -> bool:
        """Wake the agent for a due check-in, unless the policy says no; whether it was sent."""
        policy = self._settings.checkins
        tz = ZoneInfo(job.timezone)
        late = now - due
        why_not = ""
        if not policy.enabled:
            why_not = "check-ins are disabled"
        elif late > timedelta(hours=policy.max_delay_hours):
            why_not = f"missed by {_hours(late)} (more than max_delay_hours)"
        elif not within_hours(now, tz, policy.allowed_hours, policy.quiet_hours):
            why_not = "outside the allowed hours"
        elif await self._jobs.runs_since(job.agent_key, "checkin", day_start(now, tz)) >= (
            policy.max_per_day
        ):
            why_not = f"already {policy.max_per_day} check-ins today"
        if why_not:
            log.warning("check-in %d for %s skipped: %s", job.id, job.agent_key, why_not)
            return False
        await self._submit(checkin_inbound(job, due, now))
        log.info("check-in %d for %s fired (due %s)", job.id, job.agent_key, due.isoformat())
        return True

    def _arm(self, job: Job, at: datetime | None = None) -> None:
        run_at = at or job.next_run_at
        if self._timer is None or job.id is None or run_at is None:
            return
        delay = max(run_at - self._clock(), timedelta())  # on botmem's clock (tests freeze it)
        self._timer.add_job(
            self._fire,
            DateTrigger(run_date=datetime.now(UTC) + delay),
            args=(job.id,),
            id=_timer_id(job.id),
            replace_existing=True,
            misfire_grace_time=None,  # botmem's own policy decides about late runs
        )

    def _arm_periodic(self, maintenance: Callable[[], Awaitable[object]] | None) -> None:
        assert self._timer is not None
        if maintenance is not None:
            minutes = self._settings.summarization.check_every_minutes
            self._timer.add_job(maintenance, IntervalTrigger(minutes=minutes), id="maintenance")
        consolidation = self._settings.consolidation
        if consolidation.enabled and consolidation.schedule:
            tz = ZoneInfo(self._settings.agent.timezone)
            self._timer.add_job(
                self.plan_consolidations,
                cron_trigger(consolidation.schedule, tz),
                id="consolidation",
            )

    async def plan_consolidations(self) -> int:
        """The scheduled pass: plan a consolidation of every agent active in the last day;
        returns how many were planned."""
        since = self._clock() - timedelta(days=1)
        planned = 0
        for state in await self._agents.all():
            if state.last_active_at is not None and state.last_active_at >= since:
                planned += await self.request_consolidation(state.agent_key, "scheduled")
        log.info("scheduled consolidation: %d agent(s) planned", planned)
        return planned


def checkin_inbound(job: Job, due: datetime, now: datetime) -> InboundMessage:
    """The wake-up event of a check-in, addressed to the conversation it was planned in."""
    ref = job.payload.get("conversation", {})
    note = str(job.payload.get("note", ""))
    text = f"Check-in {job.id} that you scheduled: {note}"
    if now - due > timedelta(minutes=5):
        local = due.astimezone(ZoneInfo(job.timezone))
        text += (
            f" (It was due at {local:%Y-%m-%d %H:%M}, {_hours(now - due)} ago: the bot was "
            "offline. Take the delay into account.)"
        )
    return InboundMessage(
        source=str(ref.get("source", "")),
        message_id=f"job:{job.id}:{due.isoformat()}",
        agent_key=job.agent_key,
        text=text,
        user_id=str(ref.get("user_id", "")),
        user_name=str(ref.get("user_name", "")),
        channel_id=str(ref.get("channel_id", "")),
        thread_id=str(ref.get("thread_id", "")),
        team_id=str(ref.get("team_id", "")),
        kind="scheduled",
        is_direct=bool(ref.get("is_direct", True)),
        mentions_bot=True,
        received_at=now,
    )


def _timer_id(job_id: int) -> str:
    return f"job:{job_id}"


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{delta.total_seconds() / 60:.0f} min"
