"""Several botmem processes on one database: claimed turns and one elected background leader.

Every process stores what its adapters receive in the shared inbox. A `ClaimLoop` looks for
agents with work this process can do (turns, when it runs them; replies and commands for the
platforms it serves), takes each agent's lease and works its items off in order, so two
processes never run one agent at once. A process that dies stops renewing its leases; once
they run out another process takes the agent and runs the unfinished turn again, from its
stored steps.

The scheduler and the indexer run in one process at a time: whoever holds the leader lease
(`Leadership`). Jobs are specs in the database, so any process may add one; the leader finds
it due on its next look, and a check-in fired twice around a change of leader is dropped as a
duplicate inbound message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress

from botmem.router import Router
from botmem.stores.base import InboxStore, log_store_failure
from botmem.stores.leases import LeaseStore, wall_clock
from botmem.types import AgentKey

log = logging.getLogger(__name__)
LEADER_LEASE = "botmem:leader"
"""The lease of the background roles (not an agent key: those always name a platform)."""
RETRY_STUCK_AFTER = 5.0
"""Seconds before an agent whose items could not all be done (platform or store down) is
claimed again, so a failing send is not retried in a tight loop."""


def new_holder() -> str:
    """A name for this process in the leases table: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ClaimLoop:
    def __init__(
        self,
        router: Router,
        inbox: InboxStore,
        *,
        turns: bool,
        sources: Callable[[], set[str]],
        capacity: int,
        poll: float,
        wake: asyncio.Event,
    ):
        self._router = router
        self._inbox = inbox
        self._turns = turns
        self._sources = sources
        self._capacity = capacity
        self._poll = poll
        self._wake = wake
        self._tasks: dict[AgentKey, asyncio.Task[int]] = {}
        self._stuck: dict[AgentKey, float] = {}  # agent -> loop time it may be claimed again
        self._loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="botmem-claims")

    def running(self) -> bool:
        return bool(self._tasks)

    async def stop(self, grace: float = 0.0) -> int:
        """Stop claiming; let agents being worked on finish for `grace` seconds, then cancel
        them (their turns stay pending: another process, or the next start, runs them).
        Returns how many were cancelled."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        tasks = list(self._tasks.values())
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        left = [task for task in tasks if not task.done()]
        for task in left:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return len(left)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            failed = not await self._claim()
            with suppress(TimeoutError):
                # after a failed look, wait out a broken database instead of hammering it
                wait = RETRY_STUCK_AFTER if failed else self._poll
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _claim(self) -> bool:
        """Start work on claimable agents; False when the database could not be asked."""
        free = self._capacity - len(self._tasks)
        if free <= 0:
            return True
        now = asyncio.get_running_loop().time()
        self._stuck = {key: until for key, until in self._stuck.items() if until > now}
        try:
            keys = await self._inbox.claimable(
                turns=self._turns,
                sources=sorted(self._sources()),
                now=wall_clock(),
                limit=free + len(self._stuck) + len(self._tasks),
            )
        except Exception as exc:  # boundary: the loop must outlive any database failure
            log_store_failure(log, "looking for work failed", exc)
            return False
        for key in keys:
            if free > 0 and key not in self._tasks and key not in self._stuck:
                self._spawn(key)
                free -= 1
        return True

    def _spawn(self, agent_key: AgentKey) -> None:
        work = self._router.process_agent(agent_key, turns=self._turns, sources=self._sources())
        task = asyncio.create_task(work, name=f"botmem-agent:{agent_key}")
        self._tasks[agent_key] = task
        task.add_done_callback(lambda done: self._finished(agent_key, done))

    def _finished(self, agent_key: AgentKey, task: asyncio.Task[int]) -> None:
        del self._tasks[agent_key]
        self._wake.set()  # a slot is free, and the agent may have new work already
        if task.cancelled():
            return
        failure = task.exception()
        if failure is not None:
            log.error("working off %s failed: %r", agent_key, failure)
        if failure is not None or task.result() > 0:
            self._stuck[agent_key] = asyncio.get_running_loop().time() + RETRY_STUCK_AFTER


class Leadership:
    """Holds the leader lease when it can; runs `elected` on taking it, `deposed` on losing
    it (or at stop), and `tick` about every `tick_every` seconds while leading."""

    def __init__(
        self,
        leases: LeaseStore,
        holder: str,
        ttl: float,
        *,
        elected: Callable[[], Awaitable[None]],
        deposed: Callable[[], Awaitable[None]],
        tick: Callable[[], Awaitable[object]],
        tick_every: float = 1.0,
    ):
        self._leases = leases
        self._holder = holder
        self._ttl = ttl
        self._elected = elected
        self._deposed = deposed
        self._tick = tick
        self._tick_every = min(tick_every, ttl / 3)
        self.leading = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="botmem-leadership")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.leading:
            await self._step_down("stopping")
            with suppress(Exception):  # boundary: at worst the lease runs out by itself
                await self._leases.release([LEADER_LEASE], self._holder)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        checked_at = -self._ttl  # check at once
        while True:
            if loop.time() - checked_at >= self._ttl / 3:
                if await self._check():
                    checked_at = loop.time()
                elif self.leading and loop.time() - checked_at > self._ttl:
                    await self._step_down("the lease could not be renewed in time")
            if self.leading:
                try:
                    await self._tick()
                except Exception as exc:  # boundary: the next tick tries again
                    log.warning("background work failed: %r", exc)
            await asyncio.sleep(self._tick_every)

    async def _check(self) -> bool:
        """Take or renew the lease; False when the database could not be asked."""
        try:
            if self.leading:
                held = LEADER_LEASE in await self._leases.renew(
                    [LEADER_LEASE], self._holder, self._ttl
                )
            else:
                held = await self._leases.acquire(LEADER_LEASE, self._holder, self._ttl)
        except Exception as exc:  # boundary: keep what we have until the lease runs out
            log_store_failure(log, "leader lease check failed", exc)
            return False
        if held and not self.leading:
            self.leading = True
            log.info("this process now runs the scheduler and the indexer (%s)", self._holder)
            await self._elected()
        elif not held and self.leading:
            await self._step_down("another process took the leader lease")
        return True

    async def _step_down(self, why: str) -> None:
        self.leading = False
        log.warning("no longer running the scheduler and the indexer: %s", why)
        await self._deposed()
