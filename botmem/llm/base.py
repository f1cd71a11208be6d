"""The LLMClient protocol: what the agent loop needs from a model."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from botmem.types import ToolCall

AGENT_MODEL: ContextVar[str | None] = ContextVar("botmem_agent_model", default=None)
"""The model the running turn's agent asked for (e.g. one created over the HTTP API with
``model="openai/gpt-4.1"``); None: the configured `[llm] model`. Set by the runner."""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Completion:
    """One model answer: text, tool calls, or both."""

    text: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    model: str = ""


class LLMClient(Protocol):
    """A chat model with tool calling.

    `complete` raises `botmem.errors.LLMError` when the call fails after the client's own
    retries. `count_tokens` counts what `complete` would send, for the context budget.
    """

    context_window: int

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        max_tokens: int | None = None,
    ) -> Completion: ...

    def count_tokens(self, messages: list[dict[str, Any]]) -> int: ...

    async def warm(self) -> None:
        """Load what the first call would otherwise pay for (imports, tokenizer)."""
        ...

    async def aclose(self) -> None: ...
