"""The "api" adapter: turns started by HTTP requests, answered in the same process.

A message posted to an agent becomes an inbound event of source ``api`` and goes through
the router like any chat message: stored first, serialized with the agent's other turns.
The request then follows the turn (`TurnWatch`: its messages as they are stored) until
its reply; if the client goes away, the turn still runs to the end and stays in the
agent's history.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from botmem.adapter import Capabilities, InboundHandler, TurnTask
from botmem.events import InboundMessage, OutboundMessage
from botmem.limits import USAGE_SINK, TurnUsage
from botmem.server.ids import API_SOURCE
from botmem.stores.base import InboxStatus, Stores
from botmem.types import AgentKey, Message

log = logging.getLogger(__name__)


class ApiAdapter:
    name = API_SOURCE
    capabilities = Capabilities(max_message_chars=1_000_000)

    def __init__(self) -> None:
        self._handle: InboundHandler | None = None
        self._waiting: dict[str, asyncio.Future[OutboundMessage]] = {}

    async def start(self, handle: InboundHandler) -> None:
        self._handle = handle

    async def stop(self) -> None:
        for future in self._waiting.values():
            future.cancel()

    async def wait_closed(self) -> None:
        return None

    async def send(self, message: OutboundMessage) -> None:
        future = self._waiting.get(message.reply_to)
        if future is not None and not future.done():
            future.set_result(message)
        else:  # a check-in, or a request that gave up: the reply is in the history
            log.info("api: reply for %s kept in its history", message.agent_key)

    async def submit(
        self, agent_key: AgentKey, text: str, message_id: str | None = None
    ) -> Submission:
        """Store a user message for the agent and start its turn (the reply is not set for
        a duplicate message id)."""
        if self._handle is None:
            raise RuntimeError("the api adapter is not started")
        message_id = message_id or f"http-{uuid.uuid4()}"
        future: asyncio.Future[OutboundMessage] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        future.add_done_callback(lambda _: self._waiting.pop(message_id, None))
        inbound = InboundMessage(
            source=API_SOURCE,
            message_id=message_id,
            agent_key=agent_key,
            text=text,
            user_id=agent_key,
        )
        usage: list[TurnUsage] = []
        token = USAGE_SINK.set(usage)  # the turn's task inherits it (when it runs here)
        try:
            task = await self._handle(inbound)
        finally:
            USAGE_SINK.reset(token)
        return Submission(agent_key, message_id, future, task, usage)


@dataclass(frozen=True)
class Submission:
    """A message posted to an agent: the future of its turn's reply, and the turn's task."""

    agent_key: AgentKey
    message_id: str
    reply: asyncio.Future[OutboundMessage]
    task: TurnTask | None
    """None when another process runs the turn (worker processes claim stored turns)."""
    usage: list[TurnUsage]
    """The turn's token usage, when it ran in this process (else empty)."""

    @property
    def settled(self) -> bool:
        """Whether the turn is over here: replied to, or ended without a reply."""
        return self.reply.done() or (self.task is not None and self.task.done())

    async def wait(self, timeout: float) -> None:
        """Until the turn is over or `timeout` seconds have passed; never cancels the turn
        (a client that goes away must not stop it)."""
        waiters: list[asyncio.Future[Any]] = [self.reply]
        if self.task is not None:
            waiters.append(self.task)
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)

    def reply_text(self) -> str | None:
        if not self.reply.done() or self.reply.cancelled():
            return None
        return self.reply.result().text


class TurnWatch:
    """The messages a submitted turn stores, read from the history as the turn runs.

    Read, not pushed: the turn may run in another process (workers), and what is stored is
    what the agent's history will show."""

    def __init__(self, stores: Stores, submission: Submission, poll: float):
        self._stores = stores
        self.submission = submission
        self._poll = poll
        self.inbox_id: int | None = None
        self.messages: list[Message] = []
        self.status: InboxStatus | None = None
        """The inbox row's status once the turn is over (None: not found, e.g. wiped)."""

    async def find(self) -> None:
        """Find the turn's inbox row (right after `submit`; a repeated message id finds the
        first post's row, finished or not)."""
        item = await self._stores.inbox.find(API_SOURCE, self.submission.message_id)
        if item is not None and item.inbound.agent_key == self.submission.agent_key:
            self.inbox_id = item.id

    async def steps(self) -> AsyncGenerator[list[Message], None]:
        """The turn's newly stored messages, a batch at a time, until the turn is over."""
        while True:
            over = await self._over()  # before reading: what is stored by then is read
            fresh = await self._read()
            if fresh:
                yield fresh
            if over:
                return
            await self.submission.wait(self._poll)

    async def finish(self) -> None:
        """Wait for the end of the turn, having read all it stored."""
        async for _ in self.steps():
            pass

    async def _over(self) -> bool:
        if self.submission.settled:
            reply = self.submission.reply
            if self.inbox_id is None and reply.done() and not reply.cancelled():
                self.inbox_id = reply.result().inbox_id
            self.status = await self._status()
            return True
        if self.submission.task is None and self.inbox_id is not None:
            # Run elsewhere (another process, or the first post of a repeated message id):
            # its reply may never come here, so its row says when it is over.
            self.status = await self._status()
            return self.status != "pending"  # None: wiped meanwhile
        return False

    async def _status(self) -> InboxStatus | None:
        if self.inbox_id is None:
            return None
        item = await self._stores.inbox.get(self.inbox_id)
        return item.status if item is not None else None

    async def _read(self) -> list[Message]:
        if self.inbox_id is None:
            return []
        stored = await self._stores.history.for_turn(self.submission.agent_key, self.inbox_id)
        last = (self.messages[-1].id or 0) if self.messages else 0
        fresh = [m for m in stored if (m.id or 0) > last]
        self.messages.extend(fresh)
        return fresh
