"""The Adapter protocol: how a chat platform plugs into botmem.

An adapter turns platform events into `InboundMessage`s and hands them to `handle`; it sends
`OutboundMessage`s back. It never touches stores or the LLM.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from botmem.events import InboundMessage, OutboundMessage

TurnTask = asyncio.Task[None]
InboundHandler = Callable[[InboundMessage], Awaitable[TurnTask | None]]
"""Stores the event and schedules its turn; returns the turn's task (None for a duplicate)."""


@dataclass(frozen=True)
class Capabilities:
    max_message_chars: int = 4000
    threads: bool = False
    typing: bool = False


class Adapter(Protocol):
    name: str
    """The source name of its events, e.g. ``telegram``; also the prefix of its agent keys."""
    capabilities: Capabilities

    async def start(self, handle: InboundHandler) -> None:
        """Connect and begin delivering events; returns once started."""
        ...

    async def send(self, message: OutboundMessage) -> None: ...

    async def stop(self) -> None: ...

    async def wait_closed(self) -> None:
        """Return when the adapter has nothing more to deliver (e.g. console input ended)."""
        ...
