"""Check-in tools: the agent plans when to speak first (the scheduler wakes it then)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from botmem.agent.tools import CheckinPlanner, Tool, ToolContext, tool
from botmem.errors import ToolError
from botmem.events import InboundMessage
from botmem.schedules import describe
from botmem.stores.jobs import Job


@tool
async def schedule_checkin(ctx: ToolContext, when: str, note: str) -> str:
    """Plan a check-in: at that time you are woken up with the note and can message the person
    first, in this conversation. Use it when they ask to be reminded or checked on ("remind me
    tomorrow at 9", "check in with me every Monday"). Work out the exact time yourself, in the
    person's timezone, and tell them what you planned.

    Args:
        when: The person's local date and time in ISO 8601, e.g. 2026-03-14T09:00; or a
            5-field crontab for a repeating check-in, e.g. "0 9 * * mon" (Mondays at 9:00).
        note: What to do or ask then, for your future self, e.g. "ask how the interview went".
    """
    planner = _planner(ctx)
    job = await planner.plan_checkin(
        ctx.agent_key, when, note, ctx.timezone, conversation(ctx.inbound)
    )
    return f"Check-in {job.id} planned {describe(job.trigger, ctx.timezone)} ({ctx.timezone.key})."


@tool
async def list_checkins(ctx: ToolContext) -> str:
    """List the check-ins you have planned with this person."""
    jobs = await _planner(ctx).checkins(ctx.agent_key)
    if not jobs:
        return "No check-ins planned."
    return "\n".join(checkin_line(job) for job in jobs)


@tool
async def cancel_checkin(ctx: ToolContext, checkin_id: int) -> str:
    """Cancel a planned check-in.

    Args:
        checkin_id: Its number, as given by schedule_checkin or list_checkins.
    """
    if not await _planner(ctx).cancel_checkin(ctx.agent_key, checkin_id):
        raise ToolError(f"there is no planned check-in {checkin_id}; see list_checkins")
    return f"Check-in {checkin_id} cancelled."


CHECKIN_TOOLS: tuple[Tool, ...] = (schedule_checkin, list_checkins, cancel_checkin)


def checkin_line(job: Job) -> str:
    when = describe(job.trigger, ZoneInfo(job.timezone))
    return f"{job.id}: {when} ({job.timezone}): {job.payload.get('note', '')}"


def conversation(inbound: InboundMessage | None) -> dict[str, Any]:
    """Where a check-in planned now will speak: the conversation being answered."""
    if inbound is None:
        return {}
    return {
        "source": inbound.source,
        "channel_id": inbound.channel_id,
        "thread_id": inbound.thread_id,
        "team_id": inbound.team_id,
        "user_id": inbound.user_id,
        "user_name": inbound.user_name,
        "is_direct": inbound.is_direct,
    }


def _planner(ctx: ToolContext) -> CheckinPlanner:
    if ctx.planner is None:
        raise ToolError("check-ins are not available here (no scheduler is running)")
    return ctx.planner
