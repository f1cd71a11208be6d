"""The "api" adapter: turns started by HTTP requests, answered in the same process.

A message posted to an agent becomes an inbound event of source ``api`` and goes through
the router like any chat message: stored first, serialized with the agent's other turns.
The request then waits for the turn's reply; if the client goes away, the turn still runs
to the end and stays in the agent's history.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from botmem.adapter import Capabilities, InboundHandler
from botmem.events import InboundMessage, OutboundMessage
from botmem.server.ids import API_SOURCE
from botmem.types import AgentKey

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
    ) -> tuple[str, asyncio.Future[OutboundMessage]]:
        """Store a user message for the agent and start its turn; returns the inbound
        message id and the future of the reply (not set for a duplicate message id)."""
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
        await self._handle(inbound)
        return message_id, future
