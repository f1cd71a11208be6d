"""Commands about time: check-ins, the person's timezone, consolidation history and undo."""

from __future__ import annotations

import re
from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botmem.agent.checkin_tools import checkin_line
from botmem.agent.consolidation import Consolidator
from botmem.agent.timezones import TIMEZONE_KEY
from botmem.agent.tools import CheckinPlanner
from botmem.commands_reply import REFUSED, CommandReply
from botmem.events import InboundMessage
from botmem.stores.base import Stores
from botmem.stores.jobs import Job
from botmem.types import AgentKey

Audit = Callable[[InboundMessage, str], None]


class ScheduleCommands:
    def __init__(
        self,
        stores: Stores,
        planner: CheckinPlanner,
        consolidator: Consolidator,
        default_timezone: str,
        audit: Audit,
    ):
        self._stores = stores
        self._planner = planner
        self._consolidator = consolidator
        self._default_timezone = default_timezone
        self._audit = audit

    async def checkins(self, inbound: InboundMessage, args: list[str], admin: bool) -> CommandReply:
        if not args:
            return _listing(await self._planner.checkins(inbound.agent_key), "Your check-ins")
        platform = f"{inbound.source}:"  # admins see and steer their own platform's agents
        if args == ["all"]:
            if not admin:
                return CommandReply(REFUSED)
            self._audit(inbound, "listed all check-ins")
            jobs = [
                j for j in await self._planner.checkins(None) if j.agent_key.startswith(platform)
            ]
            return _listing(jobs, "Check-ins of every agent", owners=True)
        if len(args) == 2 and args[0] == "cancel" and re.fullmatch(r"[0-9]{1,9}", args[1]):
            owner = inbound.agent_key
            job = await self._stores.jobs.get(int(args[1])) if admin else None
            if job is not None and job.agent_key.startswith(platform):
                owner = job.agent_key
            if not await self._planner.cancel_checkin(owner, int(args[1])):
                return CommandReply(f"There is no check-in {args[1]} of yours to cancel.")
            if admin:
                self._audit(inbound, f"cancelled check-in {args[1]}")
            return CommandReply(f"Check-in {args[1]} cancelled.")
        if len(args) == 2 and args[0] == "cancel" and args[1].isdigit():  # "²", 20 digits
            return CommandReply(f"There is no check-in {args[1][:20]!r} of yours to cancel.")
        return CommandReply("Usage: checkins | checkins cancel ID | checkins all (admins)")

    async def timezone(self, inbound: InboundMessage, args: list[str]) -> CommandReply:
        key = inbound.agent_key
        state, _ = await self._stores.agents.ensure(key)
        current = state.metadata.get(TIMEZONE_KEY) or self._default_timezone
        if not args:
            return CommandReply(f"Your timezone is {current}. Change it with: timezone Area/City")
        if len(args) > 1:
            return CommandReply("Usage: timezone Area/City, e.g. timezone Europe/Paris")
        try:
            ZoneInfo(args[0])
        except (ZoneInfoNotFoundError, ValueError):
            return CommandReply(f"{args[0]!r} is not a timezone I know; try e.g. Europe/Paris")
        await self._stores.agents.set_metadata(key, {TIMEZONE_KEY: args[0]})
        return CommandReply(f"Your timezone is now {args[0]} (it was {current}).")

    async def history(self, inbound: InboundMessage, target: AgentKey) -> CommandReply:
        runs = await self._consolidator.runs(target)
        if not runs:
            return CommandReply(f"No consolidation of {target}'s memory yet.")
        lines = [f"Consolidations of {target}'s memory (undo with: undo RUN):"]
        for run in runs:
            labels = ", ".join(sorted(run.changes))
            undone = " (undone)" if run.undone else ""
            lines.append(f"{run.run_id} at {run.at:%Y-%m-%d %H:%M}: changed {labels}{undone}")
        return CommandReply("\n".join(lines))

    async def undo(self, inbound: InboundMessage, run_id: str, target: AgentKey) -> CommandReply:
        labels = await self._consolidator.undo(target, run_id)
        if not labels:
            return CommandReply(
                f"Consolidation {run_id} changed nothing I can undo (unknown, or undone already)."
            )
        self._audit(inbound, f"undid consolidation {run_id} of {target}")
        return CommandReply(f"Undone: {', '.join(labels)} restored as before {run_id}.")


def _listing(jobs: list[Job], title: str, *, owners: bool = False) -> CommandReply:
    if not jobs:
        return CommandReply("No check-ins planned.")
    lines = [f"{title} (cancel with: checkins cancel ID):"]
    lines += [checkin_line(job) + (f" [{job.agent_key}]" if owners else "") for job in jobs]
    return CommandReply("\n".join(lines))
