"""FakeAdapter: a chat platform in memory, for tests of bots built on botmem."""

from __future__ import annotations

import asyncio
import itertools
import uuid

from botmem.adapter import Capabilities, InboundHandler
from botmem.events import InboundMessage, OutboundMessage


class FakeAdapter:
    capabilities = Capabilities()

    def __init__(self, name: str = "fake"):
        self.name = name
        self.sent: list[OutboundMessage] = []
        self._handle: InboundHandler | None = None
        self._closed = asyncio.Event()
        self._ids = itertools.count(1)
        self._session = uuid.uuid4().hex[:8]  # ids stay unique across restarts

    async def start(self, handle: InboundHandler) -> None:
        self._handle = handle

    async def send(self, message: OutboundMessage) -> None:
        self.sent.append(message)

    async def stop(self) -> None:
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def inbound(self, user: str, text: str, message_id: str | None = None) -> InboundMessage:
        return InboundMessage(
            source=self.name,
            message_id=message_id or f"{self._session}-{next(self._ids)}",
            agent_key=f"{self.name}:{user}",
            text=text,
            user_id=user,
        )

    async def deliver(self, inbound: InboundMessage) -> bool:
        """Hand an event to botmem and wait for its turn; False when it was a duplicate."""
        if self._handle is None:
            raise RuntimeError("FakeAdapter.deliver before App.start")
        task = await self._handle(inbound)
        if task is None:
            return False
        await task
        return True

    async def say(self, user: str, text: str, message_id: str | None = None) -> str | None:
        """Send `text` as `user`; returns the reply sent back for it (None for a duplicate)."""
        before = len(self.sent)
        if not await self.deliver(self.inbound(user, text, message_id)):
            return None
        replies = [m.text for m in self.sent[before:] if m.agent_key == f"{self.name}:{user}"]
        return replies[-1] if replies else None
