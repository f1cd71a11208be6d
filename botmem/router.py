"""Inbound events -> turns: stored first, one turn at a time per agent, bounded concurrency.

Lifecycle of an inbox item: pending -> (turn runs) -> replied -> (adapter sends) -> delivered.
On start, `replay` picks up whatever a crash left behind: pending turns run again (resuming
from their stored steps), replied-but-undelivered replies are sent again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import replace

from botmem.adapter import TurnTask
from botmem.agent.runner import AgentRunner
from botmem.commands_reply import CommandReply
from botmem.errors import NotFoundError
from botmem.events import InboundMessage, OutboundMessage
from botmem.locks import LocalLocks
from botmem.stores.base import InboxItem, Stores, is_transient
from botmem.types import AgentKey
from botmem.unicode import scrub

log = logging.getLogger(__name__)

Deliver = Callable[[OutboundMessage], Awaitable[None]]
RunCommand = Callable[[InboundMessage], Awaitable[CommandReply]]
MAX_ATTEMPTS = 3
"""A turn that crashed the process this many times is given up (a poison message)."""
STORE_RETRY_DELAYS = (1.0, 2.0, 5.0, 15.0, 30.0, 60.0)
"""Seconds before a turn runs again after a store failure (locked or full database). After
the last, it stays pending and runs at the next start; it is never answered with an error."""
MARK_RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0)
"""...and before marking a sent reply delivered again (else it would be resent at start)."""
BUG_REPLY = "Sorry, something went wrong on my side and I could not answer that."


class Router:
    def __init__(
        self,
        stores: Stores,
        runner: AgentRunner,
        commands: RunCommand,
        deliver: Deliver,
        max_concurrent: int,
        *,
        locks: LocalLocks | None = None,
        delivers: Callable[[str], bool] = lambda source: True,
    ):
        self._stores = stores
        self._runner = runner
        self._commands = commands
        self._deliver = deliver
        self._delivers = delivers
        """Whether replies to a source can be sent from this process (else another sends)."""
        self._slots = asyncio.Semaphore(max_concurrent)
        self._locks = locks or LocalLocks()
        self._tasks: set[TurnTask] = set()
        self.claims: asyncio.Event | None = None
        """Set when turns are claimed by workers (see workers.py) rather than run at once:
        a stored event then only wakes the claim loop."""

    async def submit(self, inbound: InboundMessage) -> TurnTask | None:
        """Store the event, then schedule its turn. A duplicate is dropped (returns None)."""
        inbound = replace(inbound, text=scrub(inbound.text), user_name=scrub(inbound.user_name))
        inbox_id = await self._stores.inbox.add(inbound)
        if inbox_id is None:
            log.info(
                "duplicate %s message %s for %s dropped",
                inbound.source,
                inbound.message_id,
                inbound.agent_key,
            )
            return None
        if self.claims is not None:
            self.claims.set()
            return None
        return self._spawn(inbox_id, inbound, "pending", None)

    async def replay(self, sources: set[str] | None = None) -> int:
        """Schedule what a previous run left unfinished (for these sources); returns how many."""
        items = [
            item
            for item in await self._stores.inbox.unfinished()
            if sources is None or item.inbound.source in sources
        ]
        for item in items:
            self._spawn(item.id, item.inbound, item.status, item.reply)
        if items:
            log.info("replaying %d unfinished inbound message(s)", len(items))
        return len(items)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for every scheduled turn to finish; False when `timeout` ran out first."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._tasks:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return False
            await asyncio.wait(list(self._tasks), timeout=left)
        return True

    def cancel(self) -> int:
        """Cancel the scheduled turns (they stay pending in the inbox); returns how many."""
        for task in self._tasks:
            task.cancel()
        return len(self._tasks)

    def _spawn(
        self, inbox_id: int, inbound: InboundMessage, status: str, reply: str | None
    ) -> TurnTask:
        task = asyncio.create_task(self._process(inbox_id, inbound, status, reply))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wipe(self, agent_key: AgentKey) -> None:
        """Forget an agent once its running turn (if any) is over."""
        async with self._locks.hold(agent_key):
            await self._stores.wipe_agent(agent_key)

    async def _process(
        self, inbox_id: int, inbound: InboundMessage, status: str, reply: str | None
    ) -> None:
        if inbound.kind == "command":  # not in the agent's queue: a wipe waits for it
            async with self._slots:
                await self._handle(inbox_id, inbound, status, reply)
            return
        async with self._locks.hold(inbound.agent_key), self._slots:
            await self._handle(inbox_id, inbound, status, reply)

    async def process_agent(self, agent_key: AgentKey, *, turns: bool, sources: set[str]) -> int:
        """Work off the agent's unfinished items that this process can do, oldest first,
        holding the agent (across processes, with leased locks); returns how many are left
        undone (a store or platform failure: the caller tries again later).

        Does nothing when another task or process holds the agent: it works them off."""
        done: set[int] = set()
        async with self._locks.hold(agent_key, wait=False) as held:
            if not held:
                return 0
            while items := [
                item
                for item in await self._stores.inbox.unfinished_for(agent_key)
                if item.id not in done and _can_do(item, turns, sources)
            ]:
                for item in items:
                    done.add(item.id)
                    async with self._slots:
                        await self._handle(item.id, item.inbound, item.status, item.reply)
            left = await self._stores.inbox.unfinished_for(agent_key)
        return sum(1 for item in left if _can_do(item, turns, sources))

    async def _handle(
        self, inbox_id: int, inbound: InboundMessage, status: str, reply: str | None
    ) -> None:
        """One item, its agent already held (commands: not held; a wipe holds it itself)."""
        if inbound.kind == "command":
            if status == "pending":
                await self._command(inbox_id, inbound)
            elif reply is not None:  # answered, not delivered: the file is not kept
                await self._send(OutboundMessage.reply(inbound, reply, inbox_id, private=True))
            return
        if status == "pending":
            reply = await self._run(inbox_id, inbound)
        if reply is not None:
            await self._send(OutboundMessage.reply(inbound, reply, inbox_id))

    async def _run(self, inbox_id: int, inbound: InboundMessage) -> str | None:
        """Run the turn; returns the reply to send (None: nothing to send).

        A store failure runs it again after a while (it resumes from its stored steps, and
        edits carry keys, so nothing is applied twice); any other failure is a bug: the row
        is marked failed and the person gets a short apology."""
        attempts: list[int] = []  # counted once per run of the process, not per store retry
        for delay in (*STORE_RETRY_DELAYS, None):
            try:
                return await self._attempt(inbox_id, inbound, attempts)
            except Exception as exc:  # boundary: one broken turn must not take the bot down
                if not is_transient(exc):
                    log.exception("turn %d for %s failed", inbox_id, inbound.agent_key)
                    await self._stores.inbox.mark_failed(inbox_id, f"{type(exc).__name__}: {exc}")
                    await self._send(OutboundMessage.reply(inbound, BUG_REPLY, None))
                    return None
                if delay is None:
                    log.error(
                        "turn %d for %s: the store keeps failing (%s); left for the next start",
                        inbox_id,
                        inbound.agent_key,
                        exc,
                    )
                    return None
                log.warning(
                    "turn %d for %s: store failure (%s); trying again in %.0f s",
                    inbox_id,
                    inbound.agent_key,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)  # the agent's later turns wait: their order holds
        return None

    async def _attempt(
        self, inbox_id: int, inbound: InboundMessage, attempts: list[int]
    ) -> str | None:
        if not attempts:
            attempts.append(await self._stores.inbox.start_attempt(inbox_id))
        if attempts[0] > MAX_ATTEMPTS:
            log.error(
                "inbound %d for %s failed %d times; giving up",
                inbox_id,
                inbound.agent_key,
                attempts[0] - 1,
            )
            await self._stores.inbox.mark_failed(inbox_id, "too many attempts")
            return None
        # Over a limit: a fixed answer, no LLM call (a resumed turn was already let in).
        refusal = await self._runner.limits.refusal(inbound) if attempts[0] == 1 else None
        reply = refusal or await self._runner.run_turn(inbox_id, inbound)
        await self._stores.inbox.mark_replied(inbox_id, reply)
        return reply

    async def _command(self, inbox_id: int, inbound: InboundMessage) -> None:
        try:
            result = await self._commands(inbound)
        except Exception:  # boundary: a command bug must not take the bot down
            log.exception("command %r from %s failed", inbound.text, inbound.user_id)
            result = CommandReply(BUG_REPLY)
        with suppress(NotFoundError):  # the command wiped its own inbox row
            await self._stores.inbox.mark_replied(inbox_id, result.text)
        private = not inbound.is_direct
        await self._send(
            OutboundMessage.reply(
                inbound, result.text, inbox_id, private=private, attachment=result.attachment
            )
        )

    async def _send(self, message: OutboundMessage) -> None:
        if not self._delivers(message.source):
            if message.inbox_id is None:
                log.warning(
                    "no %s adapter here: %s gets no reply", message.source, message.agent_key
                )
            return  # stays 'replied': a process serving that platform sends it
        try:
            await self._deliver(message)
        except Exception:  # boundary: the reply stays 'replied' and is sent again on restart
            log.exception("sending the reply to %s failed", message.agent_key)
            return
        if message.inbox_id is not None:
            await self._mark_delivered(message.inbox_id)

    async def _mark_delivered(self, inbox_id: int) -> None:
        for delay in (*MARK_RETRY_DELAYS, None):
            try:
                await self._stores.inbox.mark_delivered(inbox_id)
                return
            except NotFoundError:  # wiped meanwhile
                return
            except Exception as exc:  # boundary: the reply went out; at worst it goes again
                if not is_transient(exc) or delay is None:
                    log.error("inbound %d: could not mark its reply delivered: %s", inbox_id, exc)
                    return
                await asyncio.sleep(delay)

    def running(self) -> bool:
        """Whether any turn or command is running or waiting."""
        return bool(self._tasks) or self._locks.held()

    def distribute(self, locks: LocalLocks) -> asyncio.Event:
        """Share the work with other processes: agents are held with `locks` (leased), and
        stored events are not run here at once but claimed; returns the event that wakes
        the claim loop."""
        self._locks = locks
        self.claims = asyncio.Event()
        return self.claims

    def busy(self, agent_key: AgentKey) -> bool:
        """Whether a turn of the agent is running or waiting."""
        return self._locks.busy(agent_key)

    def exclusive(self, agent_key: AgentKey) -> AbstractAsyncContextManager[bool]:
        """Hold the agent between turns (background memory work never overlaps a turn)."""
        return self._locks.hold(agent_key)


def _can_do(item: InboxItem, turns: bool, sources: set[str]) -> bool:
    """Whether a process running turns (or not) and serving `sources` can take the item."""
    if item.inbound.kind != "command" and item.status == "pending":
        return turns
    return item.inbound.source in sources
