"""The step loop (heartbeats): call the model, run its tool calls, repeat until it replies.

Every step is stored as it happens (the assistant message, then each tool result), so a turn
interrupted by a crash resumes where it stopped: calls already applied are not applied again.
Each step's prompt size is logged too (stores/steps.py), for the admin charts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from botmem.agent.context import ContextBuilder, Prompt
from botmem.agent.retrieval import Retriever
from botmem.agent.tools import CheckinPlanner, ToolContext, Toolset
from botmem.errors import LLMError, ToolError
from botmem.events import InboundMessage
from botmem.llm.base import Completion, LLMClient
from botmem.stores.base import Stores
from botmem.stores.steps import StepRecord
from botmem.types import AgentKey, Message, ToolCall

log = logging.getLogger(__name__)

STUCK_REPLY = "Sorry, I got stuck working on that and had to stop. Could you try asking again?"
LLM_DOWN_REPLY = "Sorry, I can't reach my language model right now. Please try again in a moment."
CHECKIN_DOWN_REPLY = (
    "I planned to check in with you now, but I can't reach my language model at the moment. "
    "Sorry about that: write to me whenever you like."
)
"""The give-up of a check-in: the person did not write, so "try again" would make no sense."""
SEND_MESSAGE = "send_message"


@dataclass(frozen=True)
class LoopSettings:
    max_steps: int
    max_repeated_calls: int
    max_reply_tokens: int
    timezone: ZoneInfo
    search_page_size: int


@dataclass
class Turn:
    """One inbound event being processed, with the messages it has produced so far."""

    agent_key: AgentKey
    turn_id: int
    messages: list[Message] = field(default_factory=list)
    inbound: InboundMessage | None = None
    timezone: ZoneInfo | None = None
    """The person's timezone when set for this agent (else the configured one)."""


class StepLoop:
    def __init__(
        self,
        stores: Stores,
        llm: LLMClient,
        tools: Toolset,
        context: ContextBuilder,
        settings: LoopSettings,
        clock: Callable[[], datetime],
        retriever: Retriever,
        on_stored: Callable[[], None],
        memory_pressure: Callable[[AgentKey, str], None] | None = None,
        planner: CheckinPlanner | None = None,
    ):
        self._memory_pressure = memory_pressure
        self._planner = planner
        self._stores = stores
        self._retriever = retriever
        self._on_stored = on_stored
        self._llm = llm
        self._tools = tools
        self._context = context
        self._settings = settings
        self._clock = clock

    def _pressure_for(self, agent_key: AgentKey) -> Callable[[str], None] | None:
        report = self._memory_pressure
        return None if report is None else (lambda reason: report(agent_key, reason))

    async def run(self, turn: Turn) -> str:
        """Run (or resume) the turn until the agent replies; returns the reply text."""
        await self._finish_open_calls(turn)
        steps = sum(1 for m in turn.messages if m.role == "assistant")
        while (reply := final_reply(turn.messages)) is None:
            if steps >= self._settings.max_steps or self._repeating(turn.messages):
                log.warning(
                    "agent %s: turn %s stopped after %d steps", turn.agent_key, turn.turn_id, steps
                )
                return await self._give_up(turn, STUCK_REPLY)
            steps += 1
            try:
                await self._step(turn)
            except LLMError as exc:
                log.warning("agent %s: turn %s: %s", turn.agent_key, turn.turn_id, exc)
                scheduled = turn.inbound is not None and turn.inbound.kind == "scheduled"
                return await self._give_up(
                    turn, CHECKIN_DOWN_REPLY if scheduled else LLM_DOWN_REPLY
                )
        return reply

    async def _step(self, turn: Turn) -> None:
        prompt = await self._context.build(turn.agent_key, turn.turn_id, self._clock())
        completion = await self._llm.complete(
            prompt.messages, self._tools.schemas(), max_tokens=self._settings.max_reply_tokens
        )
        await self._log_step(turn, prompt, completion)
        if not completion.tool_calls and not (completion.text or "").strip():
            log.info("agent %s: empty completion, asking again", turn.agent_key)
            return
        await self.record(turn, _assistant(turn, completion, self._clock()))
        await self._finish_open_calls(turn)

    async def _log_step(self, turn: Turn, prompt: Prompt, completion: Completion) -> None:
        """Record the step's prompt size, before its messages: a turn resumed after a crash
        between the two calls the model again and logs that call too (two points for one
        step, both real calls); a step whose messages are stored always has its point."""
        reported = completion.usage.prompt_tokens
        step = StepRecord(
            turn.agent_key,
            turn.turn_id,
            self._clock(),
            prompt_tokens=reported if reported > 0 else prompt.tokens,
            completion_tokens=completion.usage.completion_tokens,
            summarized=self._context.fold_pending(turn.agent_key),
        )
        await self._stores.steps.record(step)
        if step.summarized:
            self._context.fold_recorded(turn.agent_key)

    async def _finish_open_calls(self, turn: Turn) -> None:
        """Run the last assistant message's tool calls that have no stored result yet."""
        assistant, done = _open_calls(turn.messages)
        if assistant is None:
            return
        for index, call in enumerate(assistant.tool_calls[done:], start=done):
            result = await self._run_call(turn, call, f"{assistant.id}:{index}")
            await self.record(
                turn,
                Message(
                    turn.agent_key,
                    "tool",
                    result,
                    self._clock(),
                    turn_id=turn.turn_id,
                    tool_call_id=call.id,
                    name=call.name,
                ),
            )

    async def _run_call(self, turn: Turn, call: ToolCall, call_key: str) -> str:
        tool = self._tools.get(call.name)
        if tool is None:
            return f"Error: there is no tool named {call.name!r}; use one of {self._tools.names()}"
        ctx = ToolContext(
            turn.agent_key,
            self._stores,
            self._retriever,
            self._clock(),
            turn.timezone or self._settings.timezone,
            call_key,
            self._settings.search_page_size,
            turn.messages[0].id if turn.messages else None,
            turn.inbound,
            self._pressure_for(turn.agent_key),
            self._planner,
        )
        try:
            return await tool.call(ctx, call.arguments)
        except ToolError as exc:
            return f"Error: {exc}"
        except Exception as exc:  # boundary: a broken custom tool must not break the turn
            log.exception("agent %s: tool %s crashed", turn.agent_key, call.name)
            return f"Error: the tool failed unexpectedly ({type(exc).__name__})"

    def _repeating(self, messages: Sequence[Message]) -> bool:
        limit = self._settings.max_repeated_calls
        calls = [(c.name, c.arguments) for m in messages for c in m.tool_calls]
        return len(calls) >= limit and len(set(calls[-limit:])) == 1

    async def _give_up(self, turn: Turn, apology: str) -> str:
        """End the turn with a short apology, stored like any reply."""
        await self.record(
            turn,
            Message(
                turn.agent_key,
                "assistant",
                apology,
                self._clock(),
                turn_id=turn.turn_id,
            ),
        )
        return apology

    async def record(self, turn: Turn, message: Message) -> None:
        """Store a message of the turn, with its token count for the context budget."""
        tokens = self._llm.count_tokens([message.to_openai()])
        (stored,) = await self._stores.history.append([_with_tokens(message, tokens)])
        turn.messages.append(stored)
        self._on_stored()  # e.g. the indexer embeds it in the background


def final_reply(messages: Sequence[Message]) -> str | None:
    """The turn's reply if it has one: a plain assistant text, or a sent `send_message`."""
    if not messages:
        return None
    last = messages[-1]
    if last.role == "assistant" and not last.tool_calls:
        return last.content or ""
    assistant, done = _open_calls(messages)
    if assistant is None or done < len(assistant.tool_calls):
        return None
    results = [
        m
        for m in messages
        if m.id is not None
        and assistant.id is not None
        and m.id > assistant.id
        and m.role == "tool"
    ]
    for call, result in zip(assistant.tool_calls, results, strict=False):
        if call.name == SEND_MESSAGE and not (result.content or "").startswith("Error"):
            return assistant.spoken
    return None


def _open_calls(messages: Sequence[Message]) -> tuple[Message | None, int]:
    """The last assistant message with tool calls, and how many of its calls have results."""
    for index in range(len(messages) - 1, -1, -1):
        msg = messages[index]
        if msg.role == "assistant":
            if not msg.tool_calls:
                return None, 0
            done = sum(1 for m in messages[index + 1 :] if m.role == "tool")
            return msg, done
    return None, 0


def _assistant(turn: Turn, completion: Completion, now: datetime) -> Message:
    return Message(
        turn.agent_key,
        "assistant",
        completion.text,
        now,
        turn_id=turn.turn_id,
        tool_calls=completion.tool_calls,
    )


def _with_tokens(message: Message, tokens: int) -> Message:
    return replace(message, tokens=tokens)
