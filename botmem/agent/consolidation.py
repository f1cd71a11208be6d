"""Memory consolidation ("sleep-time"): a background pass in which the model tidies core memory.

The model sees the agent's blocks and the messages since the last pass, with memory tools only
(no send_message, no searches), and merges, corrects, compresses and archives. The pass's own
messages live in memory only: they are not part of the conversation. Its block edits carry
edit keys "consolidation:<run_id>:..." and so are recorded, listed and undone from the blocks'
history (consolidation_history). Whatever leaves a block without reaching a block or archival
memory is archived by a safety net: a pass never loses a fact silently.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any, Literal
from zoneinfo import ZoneInfo

from botmem.agent.archival_tools import archival_memory_insert
from botmem.agent.consolidation_history import (
    EDIT_PREFIX,
    ConsolidationRun,
    list_runs,
    run_edits,
    undo_run,
)
from botmem.agent.memory import render_blocks
from botmem.agent.memory_tools import core_memory_append, core_memory_replace, memory_rethink
from botmem.agent.retrieval import Retriever
from botmem.agent.timezones import agent_timezone
from botmem.agent.tools import ToolContext, Toolset
from botmem.config import ConsolidationSettings
from botmem.errors import LLMError, NotFoundError, ToolError
from botmem.llm.base import Completion, LLMClient
from botmem.stores.base import Passage, Stores
from botmem.types import AgentKey, AgentState, Block, Message, ToolCall

__all__ = ["ConsolidationReport", "ConsolidationRun", "Consolidator", "lost_lines"]

log = logging.getLogger(__name__)
THROUGH_KEY = "consolidated_through"
"""Agent metadata: id of the last message a pass has seen."""
LAST_KEY = "last_consolidation"
"""Agent metadata: when the last pass ended (ISO 8601)."""
REPLY_TOKENS = 4096
"""Room for one answer: a memory_rethink of a full block (2 x 5,000 characters) fits."""
LINE_CHARS = 1000
CHARS_PER_TOKEN = 4
"""A rough average, to keep the transcript within half of the budget (and of the window)."""
TOOLS = Toolset([core_memory_append, core_memory_replace, memory_rethink, archival_memory_insert])
Stopped = Literal["done", "max_steps", "budget", "error"]


@dataclass(frozen=True)
class ConsolidationReport:
    run_id: str
    steps: int
    tokens: int
    edits: int
    """Block edits applied by the pass."""
    archived: int
    """Passages the model saved to archival memory."""
    rescued: int
    """Lines that left a block unarchived, saved to archival memory by the safety net."""
    stopped: Stopped
    """done: the model finished; max_steps / budget: a bound stopped it; error: the LLM failed."""


@dataclass
class _Pass:
    """One pass in progress; its conversation with the model is never stored."""

    agent_key: AgentKey
    run_id: str
    timezone: ZoneInfo
    shared: frozenset[str]
    messages: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    tokens: int = 0
    archived: list[str] = field(default_factory=list)


class Consolidator:
    def __init__(
        self,
        stores: Stores,
        llm: LLMClient,
        settings: ConsolidationSettings,
        clock: Callable[[], datetime],
        retriever: Retriever,
        timezone: ZoneInfo,
    ):
        self._stores = stores
        self._llm = llm
        self._settings = settings
        self._clock = clock
        self._retriever = retriever
        self._timezone = timezone
        self._instructions = (
            resources.files("botmem.agent").joinpath("prompts/consolidation.txt").read_text("utf-8")
        )

    async def run(self, agent_key: AgentKey, reason: str) -> ConsolidationReport:
        """One pass over the agent's memory. The caller keeps the agent's turns out meanwhile."""
        state = await self._stores.agents.get(agent_key)
        if state is None:
            raise NotFoundError(f"no agent {agent_key!r}")
        before = await self._stores.blocks.for_agent(agent_key)
        seen = await self._stores.history.since(agent_key, _through(state) + 1)
        work = _Pass(
            agent_key,
            new_run_id(self._clock()),
            agent_timezone(state, self._timezone),
            frozenset(b.label for b in before if b.shared_name),
        )
        stopped: Stopped = "done"
        try:
            if any(not b.read_only and not b.shared_name for b in before):
                work.messages = self._prompt(before, seen, work.timezone)
                stopped = await self._converse(work)
        finally:  # also after a crash: what left a block must reach archival memory
            rescued = await self._rescue(work, before)
        if stopped != "error":  # a failed pass shows the same messages again next time
            await self._mark_done(agent_key, seen)
        edits = await run_edits(self._stores.blocks, agent_key, work.run_id)
        report = ConsolidationReport(
            work.run_id, work.steps, work.tokens, len(edits), len(work.archived), rescued, stopped
        )
        log.info(
            "agent %s: consolidated (%s): %d edits, %d archived, %d rescued, %d steps, %d tokens",
            agent_key,
            reason,
            report.edits,
            report.archived,
            report.rescued,
            report.steps,
            report.tokens,
        )
        return report

    async def undo(self, agent_key: AgentKey, run_id: str) -> list[str]:
        """Restore the blocks a pass changed to their values before it; the labels restored."""
        return await undo_run(self._stores.blocks, agent_key, run_id)

    async def runs(self, agent_key: AgentKey, limit: int = 20) -> list[ConsolidationRun]:
        """The agent's passes that changed something, newest first (for admins)."""
        return await list_runs(self._stores.blocks, agent_key, limit)

    def _prompt(
        self, blocks: Sequence[Block], seen: Sequence[Message], tz: ZoneInfo
    ) -> list[dict[str, Any]]:
        said = [m for m in seen if m.role in ("user", "assistant")]
        lines = [line for m in said[-self._settings.max_messages :] if (line := _line(m, tz))]
        window = min(self._settings.max_tokens, self._llm.context_window)
        lines = _newest(lines, max_chars=window * CHARS_PER_TOKEN // 2)
        parts = ["### Core memory\n" + render_blocks(blocks)]
        shared = [b.label for b in blocks if b.shared_name]
        if shared:
            parts.append(
                f"Shared with other agents, leave as they are: {', '.join(shared)}. "
                "Do not move facts out of them or copy them into other blocks."
            )
        parts.append(
            "### Conversation since the last tidy-up\n" + ("\n".join(lines) or "(no new messages)")
        )
        return [
            {"role": "system", "content": self._instructions.strip()},
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    async def _converse(self, work: _Pass) -> Stopped:
        """Steps until the model stops calling tools or a bound is reached."""
        for step in range(self._settings.max_steps):
            try:
                completion = await self._llm.complete(
                    work.messages, TOOLS.schemas(), max_tokens=REPLY_TOKENS
                )
            except LLMError as exc:
                log.warning("agent %s: consolidation %s: %s", work.agent_key, work.run_id, exc)
                return "error"
            work.steps += 1
            assistant = _assistant(work.agent_key, completion, self._clock())
            work.tokens += completion.usage.total_tokens or self._llm.count_tokens(
                [*work.messages, assistant.to_openai()]
            )
            if not completion.tool_calls:
                return "done"
            work.messages.append(assistant.to_openai())
            for index, call in enumerate(completion.tool_calls):
                result = await self._call(work, call, f"{EDIT_PREFIX}{work.run_id}:{step}:{index}")
                work.messages.append(
                    {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": result}
                )
            if work.tokens >= self._settings.max_tokens:
                return "budget"
        return "max_steps"

    async def _call(self, work: _Pass, call: ToolCall, call_key: str) -> str:
        tool = TOOLS.get(call.name)
        if tool is None:
            return f"Error: there is no tool named {call.name!r} here; use one of {TOOLS.names()}"
        ctx = ToolContext(
            agent_key=work.agent_key,
            stores=self._stores,
            retriever=self._retriever,
            now=self._clock(),
            timezone=work.timezone,
            call_key=call_key,
        )
        try:
            args = tool.parse_arguments(call.arguments)
            if args.get("label") in work.shared:
                raise ToolError(
                    f"block '{args['label']}' is shared with other agents: leave it as it is"
                )
            result = await tool.fn(ctx, **args)
        except ToolError as exc:
            return f"Error: {exc}"
        if tool is archival_memory_insert:
            work.archived.append(str(args["content"]))
        return result

    async def _rescue(self, work: _Pass, before: Sequence[Block]) -> int:
        """Archive the lines that left a private block and reached neither a block nor
        archival memory during the pass; how many lines."""
        after = await self._stores.blocks.for_agent(work.agent_key)
        values = {b.label: b.value for b in after}
        kept = [*values.values(), *work.archived]
        rescued = 0
        for block in before:
            if block.shared_name or values.get(block.label) == block.value:
                continue
            lost = lost_lines(block.value, kept)
            if not lost:
                continue
            text = f"Moved out of core memory block '{block.label}' by a memory tidy-up:\n"
            passage = Passage(
                work.agent_key,
                text + "\n".join(lost),
                self._clock(),
                ("consolidation", block.label),
            )
            await self._retriever.insert_passage(passage)
            rescued += len(lost)
        return rescued

    async def _mark_done(self, agent_key: AgentKey, seen: Sequence[Message]) -> None:
        values: dict[str, Any] = {LAST_KEY: self._clock().isoformat()}
        if seen and seen[-1].id is not None:
            values[THROUGH_KEY] = seen[-1].id
        await self._stores.agents.set_metadata(agent_key, values)


def new_run_id(now: datetime) -> str:
    """Sortable by time, unique thanks to the random suffix; no ':' (edit keys use it)."""
    return f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def lost_lines(old_value: str, kept: Sequence[str]) -> list[str]:
    """The lines of `old_value` found in none of `kept` (compared loosely: case, spacing and
    bullet marks aside), each once, in order."""
    haystack = "\n".join(_loose(text) for text in kept)
    lines = (line.strip() for line in old_value.splitlines())
    return list(dict.fromkeys(line for line in lines if _loose(line) not in haystack))


def _loose(text: str) -> str:
    return re.sub(r"\s+", " ", text.lstrip("-*• \t")).strip().casefold()


def _through(state: AgentState) -> int:
    value = state.metadata.get(THROUGH_KEY)
    return value if isinstance(value, int) else 0


def _line(msg: Message, tz: ZoneInfo) -> str:
    """One message of the transcript: what was said, and the memory tools it called."""
    calls = [f"{c.name}({c.arguments})" for c in msg.tool_calls if c.name != "send_message"]
    text = " ".join([msg.spoken.strip(), *calls]).strip()
    if not text:
        return ""
    stamp = msg.created_at.astimezone(tz).isoformat(timespec="minutes")
    return f"[{stamp}] {msg.role}: {text[:LINE_CHARS]}"


def _newest(lines: Sequence[str], max_chars: int) -> list[str]:
    """The most recent lines that fit in `max_chars`, oldest first."""
    kept: list[str] = []
    total = 0
    for line in reversed(lines):
        total += len(line) + 1
        if total > max_chars:
            break
        kept.append(line)
    return kept[::-1]


def _assistant(agent_key: AgentKey, completion: Completion, now: datetime) -> Message:
    return Message(agent_key, "assistant", completion.text, now, tool_calls=completion.tool_calls)
