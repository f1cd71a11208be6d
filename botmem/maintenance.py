"""Memory work done while nobody is talking: proactive summarization and consolidation.

Both run under the agent's turn lock (never while a turn of that agent runs) and never raise
into the scheduler: a failing pass is logged and tried again at its next occasion.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from botmem.agent.consolidation import Consolidator
from botmem.agent.runner import AgentRunner
from botmem.config import Settings
from botmem.router import Router
from botmem.scheduler import Scheduler
from botmem.stores.base import Stores
from botmem.types import AgentKey

log = logging.getLogger(__name__)


class Maintenance:
    def __init__(
        self,
        stores: Stores,
        runner: AgentRunner,
        router: Router,
        consolidator: Consolidator,
        scheduler: Scheduler,
        settings: Settings,
        clock: Callable[[], datetime],
    ):
        self._stores = stores
        self._runner = runner
        self._router = router
        self._consolidator = consolidator
        self._settings = settings
        self._clock = clock
        self._checked: dict[AgentKey, datetime] = {}  # agent -> last activity already checked
        self._scheduler = scheduler
        self._requests: set[asyncio.Task[bool]] = set()

    async def summarize_idle(self) -> int:
        """Summarize agents idle long enough whose context is above the configured share."""
        config = self._settings.summarization
        if not config.idle_minutes:
            return 0
        idle_since = self._clock() - timedelta(minutes=config.idle_minutes)
        folded = 0
        for state in await self._stores.agents.all():
            active = state.last_active_at
            if active is None or active > idle_since:
                continue
            if self._checked.get(state.agent_key) == active:
                continue  # looked at since its last turn
            if self._router.busy(state.agent_key):
                continue  # a turn is running or waiting: it summarizes itself if needed
            self._checked[state.agent_key] = active
            folded += await self._compact(state.agent_key, config.above)
        return folded

    async def _compact(self, agent_key: AgentKey, above: float) -> int:
        try:
            async with self._router.exclusive(agent_key):
                count = await self._runner.compact(agent_key, above)
        except Exception:  # boundary: background work must not stop the scheduler
            log.exception("agent %s: proactive summarization failed", agent_key)
            return 0
        if count:
            log.info("agent %s: idle, summarized %d messages ahead of time", agent_key, count)
        return count

    async def consolidate(self, agent_key: AgentKey, reason: str) -> None:
        try:
            async with self._router.exclusive(agent_key):
                if await self._stores.agents.get(agent_key) is None:
                    return  # wiped since it was planned
                await self._consolidator.run(agent_key, reason)
        except Exception:  # boundary: background work must not stop the scheduler
            log.exception("agent %s: consolidation failed", agent_key)

    def memory_pressure(self, agent_key: AgentKey, reason: str) -> None:
        """Called from a turn (a block filling up, N turns): plan a consolidation soon."""
        task = asyncio.create_task(self._scheduler.request_consolidation(agent_key, reason))
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)
