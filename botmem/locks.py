"""Per-agent exclusivity: turns of one agent never interleave, background work never overlaps.

`LocalLocks` serializes within one process (asyncio locks). `LeasedLocks` adds a lease in the
database on top, so that across worker processes too one agent is held by one process at a
time. Both are re-entrant within a task (a command that wipes its own agent, a turn that asks
for consolidation), through a context variable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from contextvars import ContextVar

from botmem.stores.base import is_transient, log_store_failure
from botmem.stores.leases import LeaseStore
from botmem.types import AgentKey

log = logging.getLogger(__name__)
_held: ContextVar[frozenset[str]] = ContextVar("botmem_held_agents", default=frozenset())


class LocalLocks:
    def __init__(self) -> None:
        self._agents: dict[AgentKey, tuple[asyncio.Lock, list[int]]] = {}

    def busy(self, agent_key: AgentKey) -> bool:
        """Whether a turn of the agent is running or waiting here."""
        return agent_key in self._agents

    def held(self) -> bool:
        """Whether any agent is held (or waited for) here."""
        return bool(self._agents)

    @asynccontextmanager
    async def hold(self, agent_key: AgentKey, *, wait: bool = True) -> AsyncIterator[bool]:
        """Hold the agent (True), or yield False at once when `wait` is off and it is taken.

        The lock is dropped once no task waits for it."""
        if agent_key in _held.get():
            yield True
            return
        if not wait and self.busy(agent_key):
            yield False
            return
        lock, users = self._agents.setdefault(agent_key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                token = _held.set(_held.get() | {agent_key})
                try:
                    yield True
                finally:
                    _held.reset(token)
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._agents[agent_key]


class LeasedLocks(LocalLocks):
    """LocalLocks plus a database lease per held agent, renewed every `ttl`/3 seconds.

    A lease that could not be renewed (another process took it after it ran out, or the
    database was unreachable for `ttl`) cancels the task holding it: its turn stays pending
    and the new holder runs it again, from its stored steps.
    """

    def __init__(self, leases: LeaseStore, holder: str, ttl: float, poll: float):
        super().__init__()
        self._leases = leases
        self.holder = holder
        self._ttl = ttl
        self._poll = poll
        self._tasks: dict[AgentKey, asyncio.Task[object]] = {}
        self._renewer: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def hold(self, agent_key: AgentKey, *, wait: bool = True) -> AsyncIterator[bool]:
        if agent_key in _held.get():
            yield True
            return
        async with super().hold(agent_key, wait=wait) as held:
            if held and not await self._take(agent_key, wait):
                held = False
            if not held:
                yield False
                return
            task = asyncio.current_task()
            assert task is not None
            self._tasks[agent_key] = task
            try:
                yield True
            finally:
                del self._tasks[agent_key]
                await self._give_back(agent_key)

    async def _take(self, agent_key: AgentKey, wait: bool) -> bool:
        while not await self._leases.acquire(agent_key, self.holder, self._ttl):
            if not wait:
                return False
            await asyncio.sleep(self._poll)  # another process holds it: its turn ends soon
        return True

    async def _give_back(self, agent_key: AgentKey) -> None:
        try:
            await self._leases.release([agent_key], self.holder)
        except Exception as exc:  # boundary: the lease runs out by itself
            if not is_transient(exc):
                raise
            log.warning(
                "releasing %s failed (%s); it runs out in %.0f s", agent_key, exc, self._ttl
            )

    def start(self) -> None:
        self._renewer = asyncio.create_task(self._renew_forever(), name="botmem-lease-renewer")

    async def stop(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None

    async def _renew_forever(self) -> None:
        loop = asyncio.get_running_loop()
        renewed_at = loop.time()
        while True:
            await asyncio.sleep(self._ttl / 3)
            names = list(self._tasks)
            try:
                kept = await self._leases.renew(names, self.holder, self._ttl)
                renewed_at = loop.time()
            except Exception as exc:  # boundary: keep trying while the leases last
                log_store_failure(log, f"renewing {len(names)} lease(s) failed", exc)
                kept = set(names) if loop.time() - renewed_at < self._ttl else set()
            for name in names:
                if name not in kept and name in self._tasks:
                    log.error("lost the lease on %s; stopping its turn here", name)
                    self._tasks[name].cancel()
