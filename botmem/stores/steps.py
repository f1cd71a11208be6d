"""Steps as the admin pages chart them: the prompt size of every LLM call of an agent's turns.

One record per step (one LLM call), written by the step loop when the model answers. The
points show how an agent's context grows over its turns and where it was folded into the
summary; they are a log for people, not state the agent reads.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from botmem.types import AgentKey


@dataclass(frozen=True)
class StepRecord:
    agent_key: AgentKey
    turn_id: int
    """The inbox id of the turn."""
    created_at: datetime
    prompt_tokens: int
    """As the model reported it; botmem's own count of the prompt when it reports none."""
    completion_tokens: int
    summarized: bool = False
    """The context was folded into the summary just before this step."""


class StepStore(Protocol):
    async def record(self, step: StepRecord) -> None: ...

    async def for_agent(self, agent_key: AgentKey, *, limit: int = 500) -> list[StepRecord]:
        """The agent's last `limit` steps, oldest first."""
        ...

    async def delete_agent(self, agent_key: AgentKey) -> None: ...


class MemoryStepStore:
    """Steps in process memory, same contract as SQL."""

    def __init__(self) -> None:
        self._steps: dict[AgentKey, list[StepRecord]] = {}  # each agent's in recording order

    async def record(self, step: StepRecord) -> None:
        created_at = step.created_at
        utc = created_at.replace(tzinfo=UTC) if created_at.tzinfo is None else created_at
        stored = replace(step, created_at=utc.astimezone(UTC))  # as SQL gives it back
        self._steps.setdefault(step.agent_key, []).append(stored)

    async def for_agent(self, agent_key: AgentKey, *, limit: int = 500) -> list[StepRecord]:
        if limit <= 0:
            return []
        return self._steps.get(agent_key, [])[-limit:]

    async def delete_agent(self, agent_key: AgentKey) -> None:
        self._steps.pop(agent_key, None)
