"""The JSON shapes botmem serves, named and typed as Letta's client reads them.

Request models ignore fields botmem does not use (Letta's client sends many optional ones);
response models carry the fields the client requires plus the ones botmem fills in.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from botmem.errors import NotFoundError
from botmem.types import Block

_REQUEST = ConfigDict(extra="ignore")


class BlockCreate(BaseModel):
    model_config = _REQUEST
    label: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    value: str = Field(default="", max_length=1_000_000)
    limit: int | None = Field(default=None, ge=1, le=1_000_000)
    description: str | None = Field(default=None, max_length=10_000)
    read_only: bool = False


_BLOCK = "block-"


def block_id(store_id: str) -> str:
    """A block's id as Letta writes it, ``block-<uuid>`` (stores keep 32 hex digits)."""
    return _BLOCK + str(uuid.UUID(hex=store_id))


def block_store_id(block_id_: str) -> str:
    """The stored id of a ``block-<uuid>`` id; NotFoundError for anything else."""
    rest = block_id_.removeprefix(_BLOCK)
    try:
        if rest != block_id_ and str(uuid.UUID(rest)) == rest:
            return uuid.UUID(rest).hex
    except ValueError:
        pass
    raise NotFoundError(f"no block {block_id_!r}")


class BlockOut(BaseModel):
    id: str
    label: str
    value: str
    limit: int
    description: str | None = None
    read_only: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    """``shared``: whether other agents see the same block."""

    @classmethod
    def of(cls, block: Block) -> BlockOut:
        return cls(
            id=block_id(block.id),
            label=block.label,
            value=block.value,
            limit=block.limit,
            description=block.description or None,
            read_only=block.read_only,
            metadata={"shared": block.shared_name is not None, "version": block.version},
        )


class LlmConfigOut(BaseModel):
    model: str
    model_endpoint_type: str
    context_window: int
    handle: str
    model_endpoint: str | None = None


class ToolOut(BaseModel):
    id: str
    name: str
    description: str | None = None
    tool_type: str = "letta_core"
    json_schema: dict[str, Any] | None = None


class MemoryOut(BaseModel):
    blocks: list[BlockOut]


class AgentOut(BaseModel):
    id: str
    name: str
    agent_type: str = "memgpt_v2_agent"
    system: str
    model: str
    embedding: str | None = None
    llm_config: LlmConfigOut
    blocks: list[BlockOut]
    memory: MemoryOut
    tools: list[ToolOut]
    sources: list[dict[str, Any]] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime | None = None
    last_run_completion: datetime | None = None
    warnings: list[str] = Field(default_factory=list)
    """botmem's own: what the request asked for that this server does not do."""
