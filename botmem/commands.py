"""In-chat memory commands (`/memory ...`), answered without the LLM.

Adapters turn the platform's native command (a Telegram `/memory`, a Discord or Slack slash
command) into an inbound of kind "command" whose text is what follows the command name, e.g.
``show``, ``wipe confirm`` or ``export telegram:42``. Parsing is strict: anything unexpected
gets the usage text, never an exception.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from botmem.agent.consolidation import Consolidator
from botmem.agent.memory import append, rethink
from botmem.agent.teams import TeamBlocks
from botmem.agent.tools import CheckinPlanner
from botmem.agentfile import export_agent
from botmem.commands_reply import REFUSED, CommandReply
from botmem.commands_schedule import ScheduleCommands
from botmem.errors import ToolError
from botmem.events import Attachment, InboundMessage
from botmem.platform_config import PlatformSettings
from botmem.routing import TEAM_LABEL, is_private_agent, platform_user
from botmem.stores.base import Stores
from botmem.types import AgentKey, Block
from botmem.unicode import scrub

log = logging.getLogger(__name__)
CONFIRM_WINDOW = timedelta(minutes=5)
LIST_LIMIT = 50
USAGE = """Memory commands:
  help                 this text
  show                 what I remember about you (my memory blocks)
  export               your memory as a JSON file
  wipe                 forget everything about you (asks to confirm)
  checkins             the check-ins I planned with you; checkins cancel ID
  timezone [Area/City] your timezone (for check-ins and dates)
Admins only:
  show|export|wipe AGENT   the same for any agent (e.g. telegram:42)
  agents [TEXT]        list agents (whose key contains TEXT)
  team                 the team's shared block
  team set TEXT        replace the team's shared block
  team append TEXT     add a line to the team's shared block
  checkins all         every planned check-in (checkins cancel ID cancels any)
  history [AGENT]      consolidations of an agent's memory
  undo RUN [AGENT]     restore the blocks a consolidation changed"""
Wipe = Callable[[AgentKey], Awaitable[None]]
"""Forget an agent, waiting for its running turn first (given by the router)."""


class Commands:
    def __init__(
        self,
        stores: Stores,
        platforms: Mapping[str, PlatformSettings],
        teams: TeamBlocks,
        wipe: Wipe,
        clock: Callable[[], datetime],
        planner: CheckinPlanner,
        consolidator: Consolidator,
        default_timezone: str = "UTC",
    ):
        self._stores = stores
        self._platforms = platforms
        self._teams = teams
        self._wipe = wipe
        self._clock = clock
        self._pending_wipes: dict[tuple[str, AgentKey], datetime] = {}
        self._schedule = ScheduleCommands(
            stores, planner, consolidator, default_timezone, self._audit
        )

    async def run(self, inbound: InboundMessage) -> CommandReply:
        inbound = replace(inbound, text=scrub(inbound.text))  # what the stores can hold
        words = inbound.text.split()
        verb, args = (words[0].lower(), words[1:]) if words else ("help", [])
        if verb in ("show", "export", "wipe"):
            return await self._on_agent(inbound, verb, args)
        if verb == "agents":
            return await self._agents(inbound, " ".join(args))
        if verb == "team":
            return await self._team(inbound, inbound.text.split(maxsplit=2)[1:])
        if verb == "checkins":
            return await self._schedule.checkins(inbound, args, self.is_admin(inbound))
        if verb == "timezone":
            return await self._schedule.timezone(inbound, args)
        if verb in ("history", "undo"):
            return await self._consolidations(inbound, verb, args)
        if verb == "help" and not args:
            return CommandReply(USAGE)
        return CommandReply(f"Unknown command {inbound.text.strip()!r}.\n\n{USAGE}")

    def is_admin(self, inbound: InboundMessage) -> bool:
        platform = self._platforms.get(inbound.source)
        if platform is None:
            return False
        if platform_user(inbound.source, inbound.user_id) in platform.admins:
            return True
        return platform.platform_admins and bool(inbound.extra.get("platform_admin"))

    async def _on_agent(self, inbound: InboundMessage, verb: str, args: list[str]) -> CommandReply:
        confirm = verb == "wipe" and args[:1] == ["confirm"]
        args = args[1:] if confirm else args
        if len(args) > 1:
            return CommandReply(f"Too many arguments.\n\n{USAGE}")
        target = self._target(inbound, args[0] if args else None)
        if isinstance(target, CommandReply):
            return target
        if await self._stores.agents.get(target) is None:
            return CommandReply(f"I have no memory of {target} yet.")
        if target != inbound.agent_key:
            self._audit(inbound, f"{verb} {target}")
        if verb == "show":
            return CommandReply(await self._render(target))
        if verb == "export":
            return await self._export(inbound, target)
        return await self._wipe_step(inbound, target, confirm)

    def _target(self, inbound: InboundMessage, arg: str | None) -> AgentKey | CommandReply:
        """The agent a command is about: the speaker's own, or (admins) the one named."""
        if arg is None:
            return inbound.agent_key
        if not self.is_admin(inbound):
            return self._refuse(inbound)
        key = arg if arg.startswith(f"{inbound.source}:") else f"{inbound.source}:{arg}"
        return key

    async def _render(self, agent_key: AgentKey) -> str:
        parts = [f"Memory of {agent_key}:"]
        for block in await self._stores.blocks.for_agent(agent_key):
            parts.append(_render_block(block))
        history = await self._stores.history.count(agent_key)
        passages = await self._stores.archival.count(agent_key)
        parts.append(f"{history} messages in recall memory, {passages} archival passages.")
        return "\n\n".join(parts)

    async def _export(self, inbound: InboundMessage, target: AgentKey) -> CommandReply:
        data = await export_agent(self._stores, target, self._clock())
        payload = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
        filename = f"{target.replace(':', '_')}.json"
        return CommandReply(
            f"Here is everything I remember about {target}.", Attachment(filename, payload)
        )

    async def _wipe_step(
        self, inbound: InboundMessage, target: AgentKey, confirm: bool
    ) -> CommandReply:
        admin = self.is_admin(inbound)
        if not admin and not is_private_agent(target):
            self._audit(inbound, f"refused: wipe of the shared agent {target}")
            return CommandReply(f"{target} is shared by this channel; only admins can wipe it.")
        request = (platform_user(inbound.source, inbound.user_id), target)
        now = self._clock()
        asked = self._pending_wipes.pop(request, None)
        if not confirm or asked is None or now - asked > CONFIRM_WINDOW:
            self._pending_wipes[request] = now
            return CommandReply(
                f"This forgets everything I remember about {target}: memory blocks, "
                f"conversation history and archival memory. It cannot be undone. To do it, "
                f"send `{_confirm_command(inbound, target)}` within 5 minutes."
            )
        await self._wipe(target)
        self._teams.forget(target)
        self._audit(inbound, f"wiped {target}")
        return CommandReply(f"Done: I have forgotten everything about {target}.")

    async def _consolidations(
        self, inbound: InboundMessage, verb: str, args: list[str]
    ) -> CommandReply:
        if not self.is_admin(inbound):
            return self._refuse(inbound)
        run_id = args.pop(0) if verb == "undo" and args else ""
        if len(args) > 1 or (verb == "undo" and not run_id):
            return CommandReply(f"Usage: history [AGENT], or undo RUN [AGENT].\n\n{USAGE}")
        target = self._target(inbound, args[0] if args else None)
        if isinstance(target, CommandReply):
            return target
        if verb == "history":
            return await self._schedule.history(inbound, target)
        return await self._schedule.undo(inbound, run_id, target)

    async def _agents(self, inbound: InboundMessage, text: str) -> CommandReply:
        if not self.is_admin(inbound):
            return self._refuse(inbound)
        prefix = f"{inbound.source}:"
        found = [
            state
            for state in await self._stores.agents.all()
            if state.agent_key.startswith(prefix) and text in state.agent_key
        ]
        found.sort(key=lambda s: s.last_active_at or s.created_at, reverse=True)
        self._audit(inbound, f"listed agents {text!r}")
        if not found:
            return CommandReply("No agents found.")
        lines = [
            f"{s.agent_key} (last active {(s.last_active_at or s.created_at):%Y-%m-%d %H:%M})"
            for s in found[:LIST_LIMIT]
        ]
        more = f"\n... and {len(found) - LIST_LIMIT} more" if len(found) > LIST_LIMIT else ""
        return CommandReply(f"{len(found)} agent(s):\n" + "\n".join(lines) + more)

    async def _team(self, inbound: InboundMessage, args: list[str]) -> CommandReply:
        if not self.is_admin(inbound):
            return self._refuse(inbound)
        await self._stores.agents.ensure(inbound.agent_key)
        if not await self._teams.attach(inbound.agent_key, inbound.source, inbound.team_id):
            return CommandReply("There is no team block here: use this in a group or server.")
        key = inbound.agent_key
        if not args:
            block = await self._stores.blocks.get(key, TEAM_LABEL)
            return CommandReply(_render_block(block) if block else "The team block is empty.")
        action = args[0].lower()
        text = args[1].strip() if len(args) > 1 else ""
        if action not in ("set", "append") or not text:
            return CommandReply(f"Usage: team set TEXT, or team append TEXT.\n\n{USAGE}")
        change = rethink(text) if action == "set" else append(text)
        try:
            edit = await self._stores.blocks.edit(key, TEAM_LABEL, change)
        except ToolError as exc:
            return CommandReply(f"Not saved: {exc}")
        self._audit(inbound, f"team {action}: {edit.old_value!r} -> {edit.new_value!r}")
        return CommandReply(f"Saved. The team block now reads:\n{edit.new_value}")

    def _refuse(self, inbound: InboundMessage) -> CommandReply:
        self._audit(inbound, f"refused: {inbound.text.strip()!r}")
        return CommandReply(REFUSED)

    def _audit(self, inbound: InboundMessage, what: str) -> None:
        who = platform_user(inbound.source, inbound.user_id)
        log.warning("admin audit: %s (%s) %s", who, inbound.user_name or "?", what)


def _confirm_command(inbound: InboundMessage, target: AgentKey) -> str:
    """The confirmation as the person types it on their platform."""
    own = target == inbound.agent_key
    if inbound.source == "discord":  # slash command options
        return "/memory wipe confirm:True" + ("" if own else f" user:{target}")
    return "/memory wipe confirm" + ("" if own else f" {target}")


def _render_block(block: Block) -> str:
    shared = " (shared)" if block.shared_name else ""
    used = f"{len(block.value)}/{block.limit} chars, {100 * len(block.value) // block.limit}%"
    return f"[{block.label}]{shared} {used}\n{block.value or '(empty)'}"
