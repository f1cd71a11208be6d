"""The shared `team` block: one per Discord guild, Slack workspace or Telegram group.

An agent shows the team block of the team its current message comes from. A person with one
agent across two guilds sees each guild's block only while talking in that guild, so what one
team tells the bot never reaches another team.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from botmem.platform_config import PlatformSettings
from botmem.routing import TEAM_LABEL, team_block_name
from botmem.stores.base import BlockStore
from botmem.types import AgentKey, BlockSpec

log = logging.getLogger(__name__)


class TeamBlocks:
    def __init__(self, blocks: BlockStore, platforms: Mapping[str, PlatformSettings]):
        self._blocks = blocks
        self._platforms = platforms
        self._current: dict[AgentKey, str] = {}  # agent -> shared name of its team block

    def spec(self, source: str) -> BlockSpec | None:
        """The team block of a platform's teams, or None when switched off (or no platform)."""
        platform = self._platforms.get(source)
        if platform is None or not platform.team_block:
            return None
        return BlockSpec(TEAM_LABEL, "", platform.team_block_limit, platform.team_block_description)

    async def attach(self, agent_key: AgentKey, source: str, team_id: str) -> bool:
        """Make the agent's `team` block the one of this team; False when none applies."""
        spec = self.spec(source)
        if spec is None or not team_id:
            return False
        name = team_block_name(source, team_id)
        if self._current.get(agent_key) == name:
            return True  # attached earlier in this process (a wipe calls `forget`)
        current = await self._blocks.get(agent_key, TEAM_LABEL)
        if current is not None and current.shared_name != name:
            if not (current.shared_name or "").endswith(f":{TEAM_LABEL}"):
                log.warning("agent %s has its own 'team' block: no shared one", agent_key)
                return False
            await self._blocks.detach(agent_key, TEAM_LABEL)
            log.info("agent %s: switched to the team block %s", agent_key, name)
        await self._blocks.attach(agent_key, spec, shared_name=name)
        self._current[agent_key] = name
        return True

    def forget(self, agent_key: AgentKey) -> None:
        self._current.pop(agent_key, None)
