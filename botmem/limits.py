"""Per-agent limits, so one person cannot run up the LLM bill: a message rate and token budgets.

Checked by the router before a turn reaches the model (`Limits.refusal`); a refused turn is
answered with a short fixed text and never calls the LLM. Commands are never limited.

- `messages_per_minute`: user messages of one agent let through in any 60 seconds (a sliding
  window kept in memory: a restart forgets it). Scheduled check-ins are not counted.
- `tokens_per_hour` / `tokens_per_day`: prompt + completion tokens as the LLM client reports
  them (`Completion.usage`) over every LLM call of the agent's turns (steps and summaries)
  and its proactive summarization. Recorded once per turn in the agent's metadata, in
  5-minute buckets, so budgets survive restarts. A turn that starts under budget finishes;
  the next one is refused. Check-ins count toward the budget and, over it, send a fixed
  note instead of waking the model.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botmem.config import LimitSettings
from botmem.events import InboundMessage
from botmem.llm.base import Completion, LLMClient
from botmem.stores.base import AgentStore
from botmem.types import AgentKey

log = logging.getLogger(__name__)

RATE_REPLY = "You're sending messages faster than I can keep up; please wait a minute."
BUDGET_REPLY = "I've reached my usage limit for you for now; try again in about {wait}."
CHECKIN_BUDGET_REPLY = (
    "I planned to check in with you now, but I've reached my usage limit for you for the "
    "moment. Write to me in about {wait}."
)
USAGE_KEY = "token_usage"
"""The agent metadata key holding its recent token usage: {bucket start (ISO): tokens}."""
BUCKET = timedelta(minutes=5)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SWEEP_AT = 1024
"""Forget idle agents' counters once this many (then twice as many as were left) are held."""
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Refusal:
    """Why a turn may not run now."""

    limit: str
    """The setting that refused it, e.g. "tokens_per_hour"."""
    used: int
    allowed: int
    retry_after: timedelta


class MessageRate:
    """Sliding window of the turns let through per agent (in memory)."""

    def __init__(self, per_minute: int):
        self._per_minute = per_minute
        self._times: dict[AgentKey, deque[datetime]] = {}
        self._sweep_at = SWEEP_AT

    def admit(self, agent_key: AgentKey, now: datetime) -> Refusal | None:
        """Count the message if it fits in the window; else say when it would."""
        if not self._per_minute:
            return None
        times = self._times.setdefault(agent_key, deque())
        while times and times[0] <= now - MINUTE:
            times.popleft()
        if len(times) >= self._per_minute:
            return Refusal(
                "messages_per_minute", len(times), self._per_minute, times[0] + MINUTE - now
            )
        times.append(now)
        if len(self._times) >= self._sweep_at:
            self._sweep(now)
        return None

    def _sweep(self, now: datetime) -> None:
        self._times = {key: t for key, t in self._times.items() if t and t[-1] > now - MINUTE}
        self._sweep_at = max(SWEEP_AT, 2 * len(self._times))


class TokenBudget:
    """Tokens per agent over the last hour and day, kept in the agent's metadata."""

    def __init__(self, agents: AgentStore, per_hour: int, per_day: int):
        self._agents = agents
        self._limits = [("tokens_per_hour", per_hour, HOUR), ("tokens_per_day", per_day, DAY)]
        self._usage: dict[AgentKey, dict[datetime, int]] = {}  # read once per agent, then kept
        self._sweep_at = SWEEP_AT

    @property
    def enabled(self) -> bool:
        return any(allowed for _name, allowed, _window in self._limits)

    async def check(self, agent_key: AgentKey, now: datetime) -> Refusal | None:
        if not self.enabled:
            return None
        buckets = await self._buckets(agent_key, now)
        refusals = [
            refusal
            for name, allowed, window in self._limits
            if allowed and (refusal := _over(name, allowed, window, buckets, now))
        ]
        return max(refusals, key=lambda r: r.retry_after, default=None)  # the longest wait

    async def record(self, agent_key: AgentKey, tokens: int, now: datetime) -> None:
        """Add one turn's tokens (one metadata write)."""
        if not (self.enabled and tokens > 0):
            return
        buckets = await self._buckets(agent_key, now)
        start = _bucket_start(now)
        buckets[start] = buckets.get(start, 0) + tokens
        stored = {at.isoformat(): used for at, used in sorted(buckets.items())}
        await self._agents.set_metadata(agent_key, {USAGE_KEY: stored})
        if len(self._usage) >= self._sweep_at:
            self._sweep(now)

    async def _buckets(self, agent_key: AgentKey, now: datetime) -> dict[datetime, int]:
        buckets = self._usage.get(agent_key)
        if buckets is None:
            state = await self._agents.get(agent_key)
            stored = state.metadata.get(USAGE_KEY) if state is not None else None
            buckets = self._usage[agent_key] = _parse(stored)
        for start in [at for at in buckets if at <= now - DAY]:
            del buckets[start]
        return buckets

    def _sweep(self, now: datetime) -> None:
        self._usage = {key: b for key, b in self._usage.items() if b and max(b) > now - DAY}
        self._sweep_at = max(SWEEP_AT, 2 * len(self._usage))


class Limits:
    """The router's and runner's view: may this turn run, and what did it cost."""

    def __init__(self, settings: LimitSettings, agents: AgentStore, clock: Clock):
        self._clock = clock
        self._rate = MessageRate(settings.messages_per_minute)
        self._budget = TokenBudget(agents, settings.tokens_per_hour, settings.tokens_per_day)

    async def refusal(self, inbound: InboundMessage) -> str | None:
        """The reply to send instead of running the turn, or None to let it run.

        User messages are checked against the budgets, then the rate (only messages let
        through count in the window); check-ins only against the budgets; commands never
        (they do not reach the model).
        """
        if inbound.kind == "command":
            return None
        now = self._clock()
        refused = await self._budget.check(inbound.agent_key, now)
        if refused is None and inbound.kind != "scheduled":
            refused = self._rate.admit(inbound.agent_key, now)
        if refused is None:
            return None
        log.warning(
            "agent %s: %s turn refused: %s %d/%d, retry in %d s",
            inbound.agent_key,
            inbound.kind,
            refused.limit,
            refused.used,
            refused.allowed,
            math.ceil(refused.retry_after.total_seconds()),
        )
        if refused.limit == "messages_per_minute":
            return RATE_REPLY
        template = CHECKIN_BUDGET_REPLY if inbound.kind == "scheduled" else BUDGET_REPLY
        return template.format(wait=about(refused.retry_after))

    @contextmanager
    def metering(self) -> Iterator[TurnUsage]:
        """Count the tokens of every LLM call made (through a MeteredLLM) inside the block."""
        usage = TurnUsage()
        sink = USAGE_SINK.get()
        if sink is not None:
            sink.append(usage)
        token = _CURRENT.set(usage)
        try:
            yield usage
        finally:
            _CURRENT.reset(token)

    async def record(self, agent_key: AgentKey, usage: TurnUsage) -> None:
        await self._budget.record(agent_key, usage.tokens, self._clock())


@dataclass
class TurnUsage:
    tokens: int = 0
    """What the budget counts: the reported total, or the prompt's own count."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    """As the model reported them (0 when it reports none)."""


_CURRENT: ContextVar[TurnUsage | None] = ContextVar("botmem_turn_usage", default=None)
"""The usage of the turn running in this task (each turn runs in its own asyncio task)."""
USAGE_SINK: ContextVar[list[TurnUsage] | None] = ContextVar("botmem_usage_sink", default=None)
"""Set around submitting an event to learn its turn's usage: the turn's task inherits the
context, and its TurnUsage is appended here when it starts metering (the HTTP API uses it)."""


class MeteredLLM:
    """An LLMClient that adds each call's reported usage to the running turn's TurnUsage.

    A call that reports no usage is counted as its prompt (the client's own count).
    """

    def __init__(self, inner: LLMClient):
        self._inner = inner

    @property
    def context_window(self) -> int:
        return self._inner.context_window

    @context_window.setter
    def context_window(self, value: int) -> None:
        self._inner.context_window = value

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        max_tokens: int | None = None,
    ) -> Completion:
        completion = await self._inner.complete(messages, tools, max_tokens=max_tokens)
        usage = _CURRENT.get()
        if usage is not None:
            usage.tokens += completion.usage.total_tokens or self._inner.count_tokens(messages)
            usage.prompt_tokens += completion.usage.prompt_tokens
            usage.completion_tokens += completion.usage.completion_tokens
        return completion

    def count_tokens(self, messages: list[dict[str, Any]]) -> int:
        return self._inner.count_tokens(messages)

    async def warm(self) -> None:
        await self._inner.warm()

    async def aclose(self) -> None:
        await self._inner.aclose()


def about(wait: timedelta) -> str:
    """ "about N minutes" wording: minutes up to 90, then hours."""
    minutes = max(1, math.ceil(wait.total_seconds() / 60))
    if minutes <= 90:
        return "1 minute" if minutes == 1 else f"{minutes} minutes"
    return f"{round(minutes / 60)} hours"


def _over(
    name: str, allowed: int, window: timedelta, buckets: dict[datetime, int], now: datetime
) -> Refusal | None:
    """A refusal when the buckets started in the window hold `allowed` tokens or more."""
    recent = sorted((at, used) for at, used in buckets.items() if at > now - window)
    used = sum(tokens for _at, tokens in recent)
    if used < allowed:
        return None
    left, leaves = used, now
    for at, tokens in recent:  # the oldest leave the window first
        left, leaves = left - tokens, at + window
        if left < allowed:
            break
    return Refusal(name, used, allowed, leaves - now)


def _bucket_start(now: datetime) -> datetime:
    seconds = now.timestamp()
    return datetime.fromtimestamp(seconds - seconds % BUCKET.total_seconds(), UTC)


def _parse(stored: object) -> dict[datetime, int]:
    """The metadata value back into buckets; anything malformed is dropped."""
    buckets: dict[datetime, int] = {}
    if not isinstance(stored, dict):
        return buckets
    for key, used in stored.items():
        try:
            at = datetime.fromisoformat(str(key))
        except ValueError:
            continue
        if isinstance(used, int) and at.tzinfo is not None:
            buckets[at] = used
    return buckets
