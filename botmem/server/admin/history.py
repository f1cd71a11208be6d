"""An agent's conversation as the admin page shows it: searched by words and dates, with
tool calls and their results folded away."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from botmem.agent.loop import SEND_MESSAGE
from botmem.app import App
from botmem.server.letta_messages import is_error_result
from botmem.types import AgentKey, Message

SHOWN = 200
"""Messages shown at most: the newest of those that match."""


@dataclass(frozen=True)
class Fold:
    """A tool call or result, shown folded (<details class="tool">)."""

    summary: str
    body: str
    error: bool = False


@dataclass(frozen=True)
class Entry:
    id: int
    role: str
    at: datetime
    text: str
    """What was said ("" for a message that is only tool traffic)."""
    thought: str
    """The model's text beside its tool calls (not sent to anyone)."""
    folds: tuple[Fold, ...]


@dataclass(frozen=True)
class HistoryQuery:
    """The search form: words, and a first and last day (in the agent's timezone)."""

    text: str = ""
    first: date | None = None
    last: date | None = None
    error: str | None = None

    @classmethod
    def parse(cls, text: str, first: str, last: str) -> HistoryQuery:
        days: list[date | None] = []
        for name, value in (("from", first), ("to", last)):
            try:
                days.append(date.fromisoformat(value) if value.strip() else None)
            except ValueError:
                return cls(text.strip(), error=f"{name}: {value!r} is not a date (YYYY-MM-DD)")
        return cls(text.strip(), days[0], days[1])

    @property
    def active(self) -> bool:
        return bool(self.text or self.first or self.last)

    def window(self, zone: tzinfo) -> tuple[datetime | None, datetime | None]:
        """[start, end) of the days, as instants."""
        start = datetime.combine(self.first, time(), zone) if self.first else None
        end = datetime.combine(self.last + timedelta(days=1), time(), zone) if self.last else None
        return start, end


async def history_entries(
    app: App, key: AgentKey, query: HistoryQuery, zone: tzinfo
) -> tuple[list[Entry], int]:
    """The newest SHOWN matching messages, oldest first, and how many matched.

    Words are matched as the agent's own conversation_search matches them (full text, what
    was said only); without words every message counts, tool calls and results too."""
    if query.text:
        found = [m for m, _score in await app.stores.history.search(key, query.text, limit=SHOWN)]
        messages = sorted(found, key=lambda m: m.id or 0)
    else:
        messages = await app.stores.history.since(key, 0)
    start, end = query.window(zone)
    kept = [
        m
        for m in messages
        if (start is None or m.created_at >= start) and (end is None or m.created_at < end)
    ]
    return [entry(m) for m in kept[-SHOWN:]], len(kept)


def entry(message: Message) -> Entry:
    if message.role == "tool":
        name = message.name or "tool"
        result = Fold(f"result of {name}", message.content or "", is_error_result(message))
        return Entry(message.id or 0, "tool", message.created_at, "", "", (result,))
    text, thought = message.content or "", ""
    if message.tool_calls:
        thought, text = text, _sent(message)
    calls = tuple(Fold(f"{c.name} call", c.arguments) for c in message.tool_calls)
    return Entry(message.id or 0, message.role, message.created_at, text, thought, calls)


def _sent(message: Message) -> str:
    """What the assistant's send_message call said, if it made one."""
    if any(call.name == SEND_MESSAGE for call in message.tool_calls):
        return message.spoken
    return ""
