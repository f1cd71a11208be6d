"""Console adapter: chat with one agent in the terminal, or pipe lines through it.

Each input line is one message; each reply is printed on stdout (one line per reply when stdout
is not a terminal, so scripts can read replies line by line). Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from typing import TextIO

from botmem.adapter import Capabilities, InboundHandler
from botmem.events import InboundMessage, OutboundMessage


class ConsoleAdapter:
    name = "console"
    capabilities = Capabilities(max_message_chars=100_000)

    def __init__(self, user: str, *, stdin: TextIO | None = None, stdout: TextIO | None = None):
        self.user = user
        self._stdin = stdin or sys.stdin
        self._stdout = stdout or sys.stdout
        self._interactive = self._stdin.isatty() and self._stdout.isatty()
        self._session = uuid.uuid4().hex[:12]
        self._reader: asyncio.Task[None] | None = None

    @property
    def agent_key(self) -> str:
        return f"console:{self.user}"

    async def start(self, handle: InboundHandler) -> None:
        self._reader = asyncio.create_task(self._read_lines(handle))

    async def _read_lines(self, handle: InboundHandler) -> None:
        """One turn at a time: the next line is read once the previous reply is printed."""
        lines = self._stdin_lines()
        count = 0
        while True:
            if self._interactive:
                print("you> ", end="", file=sys.stderr, flush=True)
            line = await lines.get()
            if line is None:
                return
            text = line.strip()
            if not text:
                continue
            count += 1
            task = await handle(self._inbound(text, count))
            if task is not None:
                await task

    def _stdin_lines(self) -> asyncio.Queue[str | None]:
        """Lines from a daemon thread (None at end): a blocked read must not stall Ctrl-C."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def pump() -> None:
            for line in iter(self._stdin.readline, ""):
                loop.call_soon_threadsafe(queue.put_nowait, line)
            loop.call_soon_threadsafe(queue.put_nowait, None)

        threading.Thread(target=pump, name="console-stdin", daemon=True).start()
        return queue

    def _inbound(self, text: str, count: int) -> InboundMessage:
        return InboundMessage(
            source=self.name,
            message_id=f"{self._session}-{count}",
            agent_key=self.agent_key,
            text=text,
            user_id=self.user,
            user_name=self.user,
        )

    async def send(self, message: OutboundMessage) -> None:
        text = message.text if self._interactive else " ".join(message.text.splitlines())
        prefix = "bot> " if self._interactive else ""
        self._stdout.write(f"{prefix}{text}\n")
        self._stdout.flush()

    async def stop(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()

    async def wait_closed(self) -> None:
        if self._reader is not None:
            await self._reader
