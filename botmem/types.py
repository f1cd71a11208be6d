"""Core value types shared by the agent, the stores and the adapters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

AgentKey = str
"""A platform-prefixed agent id, e.g. ``telegram:42`` or ``console:alice``."""

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class BlockSpec:
    """How to create a block: from config, or from an admin."""

    label: str
    value: str = ""
    limit: int = 5000
    description: str = ""
    read_only: bool = False


@dataclass(frozen=True)
class Block:
    """A core memory block as stored. `shared_name` is set when many agents share it."""

    id: str
    label: str
    value: str
    limit: int
    description: str = ""
    read_only: bool = False
    version: int = 1
    shared_name: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class BlockEdit:
    """One applied edit of a block (kept as the block's version history)."""

    block_id: str
    label: str
    old_value: str
    new_value: str
    version: int
    agent_key: AgentKey
    edit_key: str | None
    created_at: datetime


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    """Raw JSON text as the model produced it (may be malformed)."""


@dataclass(frozen=True)
class Message:
    """One message of an agent's recall history, in OpenAI chat shape."""

    agent_key: AgentKey
    role: Role
    content: str | None
    created_at: datetime
    id: int | None = None
    turn_id: int | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    tokens: int = 0

    @property
    def spoken(self) -> str:
        """What was said: the text, or for a `send_message` call the message it sent."""
        for call in self.tool_calls:
            if call.name == "send_message":
                try:
                    return str(json.loads(call.arguments)["message"])
                except (ValueError, KeyError, TypeError):
                    break
        return self.content or ""

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
        if self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
            if self.name:
                out["name"] = self.name
        return out


@dataclass
class AgentState:
    """Everything about an agent that is not a block or a message."""

    agent_key: AgentKey
    created_at: datetime
    last_active_at: datetime | None = None
    summary: str = ""
    summary_at: datetime | None = None
    context_start_id: int = 0
    """Messages with id >= this are in the context window; older ones live in recall only."""
    metadata: dict[str, Any] = field(default_factory=dict)
