"""ScriptedLLM: an LLMClient that plays back scripted completions and records every request.

Use it to test agents without a model:

    llm = ScriptedLLM([call("core_memory_append", label="human", content="Name: Bob"),
                       reply("Nice to meet you, Bob!")])

Requests without tools (the summarizer's) are answered from `summaries` (or a default text)
so that summarization does not consume the conversation script.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botmem.llm.base import Completion, Usage
from botmem.types import ToolCall

Scripted = Completion | BaseException
"""A completion, or an exception to raise (e.g. LLMError) at that step."""
Responder = Callable[[list[dict[str, Any]]], Scripted]


def reply(text: str) -> Completion:
    return Completion(text=text)


def call(name: str, /, **arguments: Any) -> Completion:
    """A completion with one tool call."""
    return calls((name, arguments))


def calls(*items: tuple[str, dict[str, Any]], text: str | None = None) -> Completion:
    """A completion with several tool calls (and optional text, e.g. inner thoughts)."""
    tool_calls = tuple(
        ToolCall(id=f"call_{i}", name=name, arguments=json.dumps(args))
        for i, (name, args) in enumerate(items)
    )
    return Completion(text=text, tool_calls=tool_calls)


def raw_call(name: str, arguments: str) -> Completion:
    """A tool call with arguments exactly as given (e.g. malformed JSON)."""
    return Completion(
        text=None, tool_calls=(ToolCall(id="call_0", name=name, arguments=arguments),)
    )


@dataclass
class Request:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None

    @property
    def system(self) -> str:
        return str(self.messages[0]["content"]) if self.messages else ""


@dataclass
class ScriptedLLM:
    script: list[Scripted] = field(default_factory=list)
    context_window: int = 8192
    responder: Responder | None = None
    """Answers when the script is empty; without it an empty script fails the test."""
    summaries: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def extend(self, items: Iterable[Scripted]) -> None:
        self.script.extend(items)

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        max_tokens: int | None = None,
    ) -> Completion:
        self.requests.append(Request([dict(m) for m in messages], tools))
        if tools is None:
            text = (
                self.summaries.pop(0) if self.summaries else f"Summary of {len(messages)} messages."
            )
            return Completion(text=text)
        item = self._next(messages)
        if isinstance(item, BaseException):
            raise item
        usage = Usage(prompt_tokens=self.count_tokens(messages), completion_tokens=1)
        return Completion(item.text, item.tool_calls, usage, "scripted")

    def _next(self, messages: list[dict[str, Any]]) -> Scripted:
        if self.script:
            return self.script.pop(0)
        if self.responder is not None:
            return self.responder(messages)
        raise AssertionError("ScriptedLLM: the script ran out (add replies or a responder)")

    def count_tokens(self, messages: list[dict[str, Any]]) -> int:
        """Deterministic: 3 per message plus one per 4 characters of content and arguments."""
        total = 0
        for msg in messages:
            chars = len(msg.get("content") or "")
            for tc in msg.get("tool_calls") or ():
                chars += len(tc["function"]["name"]) + len(tc["function"]["arguments"])
            total += 3 + math.ceil(chars / 4)
        return total

    @property
    def tool_requests(self) -> list[Request]:
        """Requests of agent steps (those offering tools), not the summarizer's."""
        return [r for r in self.requests if r.tools is not None]

    async def warm(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
