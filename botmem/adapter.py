"""The Adapter protocol: how a chat platform plugs into botmem.

An adapter turns platform events into `InboundMessage`s and hands them to `handle`; it sends
`OutboundMessage`s back. It never touches stores or the LLM.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from botmem.events import InboundMessage, OutboundMessage

log = logging.getLogger(__name__)

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


async def keep_typing(
    task: TurnTask, ping: Callable[[], Awaitable[None]], every: float = 4.5
) -> None:
    """Show a typing indicator until the turn is over (platforms expire it after ~5 s).

    A failing ping only costs the indicator, never the turn.
    """
    while not task.done():
        try:
            await ping()
        except Exception:  # boundary: an adapter callback; the indicator is cosmetic
            log.debug("typing indicator failed", exc_info=True)
        await asyncio.wait({task}, timeout=every)
