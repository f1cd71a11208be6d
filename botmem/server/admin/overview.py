"""What the agents list shows: one row per agent, searched, and messages per day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from botmem.app import App
from botmem.limits import USAGE_KEY
from botmem.server.ids import agent_id
from botmem.stores.steps import StepRecord
from botmem.types import AgentState, Block

FULL = 0.8
"""A block holding more than this share of its limit is highlighted (consolidation is due)."""
MAX_ROWS = 200
"""Agents listed at most (the most recently active first); a search narrows them down."""
CHART_DAYS = 30
DAY = timedelta(days=1)


@dataclass(frozen=True)
class AgentRow:
    key: str
    id: str
    name: str
    platform: str
    who: str
    """The rest of the key: the user, channel or thread the agent is for."""
    last_active: datetime | None
    messages: int
    tokens: int
    """LLM tokens of the last 24 hours."""
    full_blocks: tuple[str, ...]
    """Labels of the blocks over FULL of their limit."""


def agent_name(state: AgentState) -> str:
    return str(state.metadata.get("name") or state.agent_key)


def is_full(block: Block) -> bool:
    return len(block.value) > FULL * block.limit


def usage_percent(block: Block) -> int:
    return 100 * len(block.value) // max(block.limit, 1)


def matches(state: AgentState, query: str) -> bool:
    """Whether the search text is in the agent's key, name or platform (any case)."""
    needle = query.strip().casefold()
    platform = state.agent_key.partition(":")[0]
    return any(needle in text.casefold() for text in (state.agent_key, agent_name(state), platform))


async def agent_rows(app: App, query: str, now: datetime) -> tuple[list[AgentRow], int]:
    """The rows of the agents matching `query` (most recently active first), and how many
    matched in all (only MAX_ROWS are read in full)."""
    states = [s for s in await app.stores.agents.all() if matches(s, query)]
    states.sort(key=lambda s: (s.last_active_at or s.created_at, s.agent_key), reverse=True)
    return [await _row(app, state, now) for state in states[:MAX_ROWS]], len(states)


async def _row(app: App, state: AgentState, now: datetime) -> AgentRow:
    key = state.agent_key
    platform, _, who = key.partition(":")
    blocks = await app.stores.blocks.for_agent(key)
    return AgentRow(
        key=key,
        id=agent_id(key),
        name=agent_name(state),
        platform=platform,
        who=who,
        last_active=state.last_active_at,
        messages=await app.stores.history.count(key),
        tokens=await tokens_today(app, state, now),
        full_blocks=tuple(b.label for b in blocks if is_full(b)),
    )


async def tokens_today(app: App, state: AgentState, now: datetime) -> int:
    """Tokens of the last 24 hours: the token budget's own count (every LLM call, summaries
    too) when budgets are on; else the steps' reported prompt and completion tokens."""
    buckets = state.metadata.get(USAGE_KEY)
    if isinstance(buckets, dict) and buckets:
        return sum(_recent(buckets, now - DAY))
    steps = await app.stores.steps.for_agent(state.agent_key)
    return step_tokens(steps, now - DAY)


def step_tokens(steps: list[StepRecord], since: datetime) -> int:
    return sum(s.prompt_tokens + s.completion_tokens for s in steps if s.created_at >= since)


def _recent(buckets: dict[object, object], since: datetime) -> list[int]:
    used = []
    for start, tokens in buckets.items():
        try:
            at = datetime.fromisoformat(str(start))
        except ValueError:
            continue
        if isinstance(tokens, int) and at.tzinfo is not None and at > since:
            used.append(tokens)
    return used


async def messages_per_day(app: App, now: datetime) -> list[tuple[date, int]]:
    """User and assistant messages of all agents per UTC day, the last CHART_DAYS days,
    days without any included (as 0)."""
    today = now.date()
    first = today - timedelta(days=CHART_DAYS - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=now.tzinfo)
    counted = dict(await app.stores.history.per_day(start))
    return [(day, counted.get(day, 0)) for day in (first + n * DAY for n in range(CHART_DAYS))]
