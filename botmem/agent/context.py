"""Compile an agent's prompt within its token budget, summarizing when it would not fit.

Prompt = system text (instructions + core memory blocks + memory statistics + summary)
         + the messages still in context. Each stored message carries its token count.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from botmem.agent.memory import MemoryStats, render_blocks, render_stats
from botmem.agent.summarizer import Summarizer
from botmem.agent.timezones import agent_timezone
from botmem.config import ContextSettings
from botmem.errors import LLMError
from botmem.llm.base import LLMClient
from botmem.stores.base import HistoryStore, Stores
from botmem.types import AgentKey, AgentState, Block, Message

log = logging.getLogger(__name__)
INTERRUPTED = "Error: no result; this tool call was interrupted."


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, Any]]
    tokens: int
    summarized: int = 0
    """How many messages were folded into the summary while compiling this prompt."""


def system_text(
    instructions: str, blocks: Sequence[Block], stats: MemoryStats, summary: str
) -> str:
    parts = [
        instructions.strip(),
        "### Core memory\n" + render_blocks(blocks),
        "### Memory statistics\n" + render_stats(stats),
    ]
    if summary:
        parts.append("### Summary of earlier conversation\n" + summary)
    return "\n\n".join(parts)


def history_for_model(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """OpenAI-shaped messages; a tool call left without a result gets a stand-in result."""
    out: list[dict[str, Any]] = []
    open_calls: list[tuple[str, str]] = []
    for msg in messages:
        if msg.role != "tool":
            out += _close(open_calls)
        if msg.role == "assistant" and msg.tool_calls:
            open_calls = [(c.id, c.name) for c in msg.tool_calls]
        elif msg.role == "tool" and open_calls:
            open_calls = [c for c in open_calls if c[0] != msg.tool_call_id]
        elif msg.role == "tool":
            continue  # an orphan result (its call was summarized away) would be rejected
        out.append(msg.to_openai())
    return out + _close(open_calls)


def _close(open_calls: list[tuple[str, str]]) -> list[dict[str, Any]]:
    closed = [
        {"role": "tool", "tool_call_id": cid, "name": name, "content": INTERRUPTED}
        for cid, name in open_calls
    ]
    open_calls.clear()
    return closed


def eviction_count(
    messages: Sequence[Message],
    fixed_tokens: int,
    window: int,
    settings: ContextSettings,
    keep_from: int,
) -> int:
    """How many of the oldest messages to evict: 0 while the prompt is within the trigger.

    Over the trigger, evict until the rest fits the target, never evicting index `keep_from`
    or later (the current turn) and never leaving a tool result without its call.
    """
    total = fixed_tokens + sum(m.tokens for m in messages)
    if total <= settings.trigger * window:
        return 0
    target = settings.target * window
    count = 0
    while count < keep_from and total > target:
        total -= messages[count].tokens
        count += 1
    while count < keep_from and messages[count].role == "tool":
        count += 1
    return count


class WindowCache:
    """The messages in each agent's context, read incrementally: only newer ids are fetched.

    Keyed by the agent's creation time and context start, so a summary (new start) or a wipe
    and re-creation (new creation time) starts afresh. Least recently used agents are dropped.
    """

    def __init__(self, history: HistoryStore, max_agents: int = 2048):
        self._history = history
        self._max_agents = max_agents
        self._windows: OrderedDict[AgentKey, tuple[tuple[object, int], list[Message]]] = (
            OrderedDict()
        )

    async def messages(self, state: AgentState) -> list[Message]:
        key = state.agent_key
        version = (state.created_at, state.context_start_id)
        cached = self._windows.pop(key, None)
        if cached is None or cached[0] != version:
            found = await self._history.since(key, state.context_start_id)
        else:
            known = cached[1]
            after = (known[-1].id or 0) + 1 if known else state.context_start_id
            found = known + await self._history.since(key, after)
        self._windows[key] = (version, found)
        if len(self._windows) > self._max_agents:
            self._windows.popitem(last=False)
        return list(found)


class ContextBuilder:
    def __init__(
        self,
        stores: Stores,
        llm: LLMClient,
        summarizer: Summarizer,
        settings: ContextSettings,
        instructions: str,
        tools: list[dict[str, Any]],
        timezone: ZoneInfo,
    ):
        self._timezone = timezone
        self._stores = stores
        self._llm = llm
        self._summarizer = summarizer
        self._settings = settings
        self._instructions = instructions
        self._tools = tools
        self._tools_tokens: int | None = None  # counted at first use: counting may load a tokenizer
        self._windows = WindowCache(stores.history)
        self._folded: set[AgentKey] = set()
        """Agents folded since their last recorded step (in this process's memory only)."""

    async def build(self, agent_key: AgentKey, turn_id: int, now: datetime) -> Prompt:
        """The prompt for the next step; summarizes first when it would exceed the trigger."""
        state, messages, system, fixed = await self._parts(agent_key, now)
        keep_from = next((i for i, m in enumerate(messages) if m.turn_id == turn_id), len(messages))
        evict = eviction_count(messages, fixed, self._llm.context_window, self._settings, keep_from)
        if evict and await self._summarize(agent_key, state.summary, messages, evict):
            prompt = await self.build(agent_key, turn_id, now)
            return Prompt(prompt.messages, prompt.tokens, evict)
        history = history_for_model(messages)
        return Prompt([system, *history], fixed + sum(m.tokens for m in messages))

    async def compact(self, agent_key: AgentKey, above: float, now: datetime) -> int:
        """Summarize an idle agent whose context fills more than `above` of the window, down
        to the target, so its next message does not wait for it; returns messages folded."""
        state, messages, _, fixed = await self._parts(agent_key, now)
        trigger = min(above, self._settings.trigger)
        target = min(above, self._settings.target)  # `above` under the target still folds some
        settings = self._settings.model_copy(update={"trigger": trigger, "target": target})
        evict = eviction_count(messages, fixed, self._llm.context_window, settings, len(messages))
        if evict and await self._summarize(agent_key, state.summary, messages, evict):
            return evict
        return 0

    def fold_pending(self, agent_key: AgentKey) -> bool:
        """Whether the agent's context was folded into the summary (while compiling a prompt,
        or by `compact`) since `fold_recorded` was last called for it. Kept until then so
        that a step that fails after the fold (the model down) leaves the mark to the next."""
        return agent_key in self._folded

    def fold_recorded(self, agent_key: AgentKey) -> None:
        self._folded.discard(agent_key)

    async def _parts(
        self, agent_key: AgentKey, now: datetime
    ) -> tuple[AgentState, list[Message], dict[str, Any], int]:
        """The agent, its messages in context, the system message and the fixed token cost."""
        state = await self._stores.agents.get(agent_key)
        if state is None:
            raise LookupError(f"agent {agent_key} does not exist")
        messages = await self._windows.messages(state)
        local_now = now.astimezone(agent_timezone(state, self._timezone))
        system = await self._system(state, local_now)
        if self._tools_tokens is None:
            self._tools_tokens = self._llm.count_tokens(
                [{"role": "system", "content": json.dumps(self._tools)}]
            )
        return state, messages, system, self._llm.count_tokens([system]) + self._tools_tokens

    async def _system(self, state: AgentState, now: datetime) -> dict[str, Any]:
        blocks = await self._stores.blocks.for_agent(state.agent_key)
        recall = await self._stores.history.count(state.agent_key)
        stats = MemoryStats(recall, None, state.summary_at, now)
        # an agent created with its own system prompt (over the HTTP API) uses it instead
        instructions = state.metadata.get("system") or self._instructions
        return {
            "role": "system",
            "content": system_text(instructions, blocks, stats, state.summary),
        }

    async def _summarize(
        self, agent_key: AgentKey, previous: str, messages: Sequence[Message], evict: int
    ) -> bool:
        try:
            summary = await self._summarizer.summarize(previous, messages[:evict])
        except LLMError as exc:
            log.warning("agent %s: summarization failed, keeping full context: %s", agent_key, exc)
            return False
        next_id = messages[evict].id if evict < len(messages) else None
        start = next_id if next_id is not None else (messages[-1].id or 0) + 1
        await self._stores.agents.save_summary(agent_key, summary, start)
        self._folded.add(agent_key)
        log.info("agent %s: folded %d messages into the summary", agent_key, evict)
        return True
