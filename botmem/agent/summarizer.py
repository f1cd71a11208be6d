"""Recursive summarization: fold evicted messages and the previous summary into a new one."""

from __future__ import annotations

from collections.abc import Sequence

from botmem.llm.base import LLMClient
from botmem.types import Message

INSTRUCTIONS = (
    "You keep the running summary of a long conversation between an AI assistant and a "
    "person. Merge the previous summary and the messages below into one new summary of at "
    "most {words} words. Keep facts about the person, names, dates, decisions, promises and "
    "open questions; drop small talk. Write plain prose in the past tense. Reply with the "
    "summary only."
)
LINE_CHARS = 1000


class Summarizer:
    def __init__(self, llm: LLMClient, max_tokens: int = 512):
        self._llm = llm
        self._max_tokens = max_tokens

    async def summarize(self, previous: str, messages: Sequence[Message]) -> str:
        """One short LLM call without tools; raises LLMError when the model fails."""
        transcript = "\n".join(_line(m) for m in messages)
        prompt = [
            {"role": "system", "content": INSTRUCTIONS.format(words=int(self._max_tokens * 0.7))},
            {
                "role": "user",
                "content": f"Previous summary:\n{previous or '(none)'}\n\n"
                f"Messages to fold in:\n{transcript}",
            },
        ]
        completion = await self._llm.complete(prompt, None, max_tokens=self._max_tokens)
        return (completion.text or "").strip() or previous


def _line(msg: Message) -> str:
    text = msg.content or ""
    if msg.tool_calls:
        text += " " + "; ".join(f"{c.name}({c.arguments})" for c in msg.tool_calls)
    stamp = msg.created_at.isoformat(timespec="minutes")
    label = f"tool {msg.name}" if msg.role == "tool" else msg.role
    return f"[{stamp}] {label}: {text.strip()[:LINE_CHARS]}"
