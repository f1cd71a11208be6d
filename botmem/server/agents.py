"""/v1/agents: create, list, retrieve, modify and delete agents.

An agent made here is an agent like any other: it has blocks, history and archival memory,
its turns go through the router, and with ``metadata={"agent_key": "telegram:42"}`` it is
made as that chat user's agent. Every platform user's agent is listed here too.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from botmem.agent.runner import base_instructions
from botmem.app import App
from botmem.errors import BotmemError, NotFoundError
from botmem.server.api import ConflictError, botmem_app
from botmem.server.ids import agent_id, agent_key, new_agent_key
from botmem.server.paging import Page
from botmem.server.schemas import (
    AgentOut,
    BlockCreate,
    BlockOut,
    LlmConfigOut,
    MemoryOut,
    ToolOut,
)
from botmem.server.scrubbing import ScrubbedRoute
from botmem.types import AgentKey, AgentState, BlockSpec

log = logging.getLogger(__name__)
router = APIRouter(tags=["agents"], route_class=ScrubbedRoute)
_KEY_PATTERN = r"^[a-z][a-z0-9_]*:.+$"


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, max_length=200, description="e.g. openai/gpt-4.1")
    embedding: str | None = Field(default=None, max_length=200)
    system: str | None = Field(default=None, max_length=200_000)
    memory_blocks: list[BlockCreate] = Field(default_factory=list, max_length=100)
    tools: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    tags: list[str] = Field(default_factory=list, max_length=100)
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description='botmem reads "agent_key" (e.g. "telegram:42"): make that chat user\'s agent.',
    )


class AgentUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, max_length=200)
    system: str | None = Field(default=None, max_length=200_000)
    description: str | None = Field(default=None, max_length=10_000)
    tags: list[str] | None = Field(default=None, max_length=100)
    metadata: dict[str, Any] | None = None


@router.post("/agents/", response_model=AgentOut, summary="Create an agent")
async def create_agent(body: AgentCreate, app: App = Depends(botmem_app)) -> AgentOut:
    key = _requested_key(body.metadata)
    warnings = _tool_warnings(app, body.tools)
    specs = [_spec(block, n, app) for n, block in enumerate(body.memory_blocks)]
    async with app.router.exclusive(key):
        if await app.stores.agents.get(key) is not None:
            raise ConflictError(f"agent {agent_id(key)} ({key}) already exists")
        await app.stores.agents.ensure(key)
        for spec in specs:
            await app.stores.blocks.attach(key, spec)
        await app.stores.agents.set_metadata(key, _metadata(body, key))
        await app.runner.ensure_agent(key)  # the configured blocks it was not given
    log.info("api: created agent %s (%s)", agent_id(key), key)
    return await agent_out(app, key, warnings)


@router.get("/agents/", response_model=list[AgentOut], summary="List agents")
async def list_agents(
    page: Page = Depends(),
    name: str | None = Query(None, description="Only agents with this name."),
    tags: list[str] | None = Query(None, description="Only agents with all these tags."),
    app: App = Depends(botmem_app),
) -> list[AgentOut]:
    states = sorted(await app.stores.agents.all(), key=lambda s: (s.created_at, s.agent_key))
    if name is not None:
        states = [s for s in states if _name(s) == name]
    if tags:
        states = [s for s in states if set(tags) <= set(s.metadata.get("tags") or [])]
    chosen = page.apply(states, lambda s: agent_id(s.agent_key))
    return [await agent_out(app, s.agent_key) for s in chosen]


@router.get("/agents/{agent_id}", response_model=AgentOut, summary="Retrieve an agent")
async def retrieve_agent(agent_id: str, app: App = Depends(botmem_app)) -> AgentOut:
    return await agent_out(app, await existing_agent(app, agent_id))


@router.patch("/agents/{agent_id}", response_model=AgentOut, summary="Modify an agent")
async def modify_agent(
    agent_id: str, body: AgentUpdate, app: App = Depends(botmem_app)
) -> AgentOut:
    key = await existing_agent(app, agent_id)
    changes = body.model_dump(exclude_unset=True)
    if "metadata" in changes:
        changes["user_metadata"] = changes.pop("metadata") or {}
    if changes:
        await app.stores.agents.set_metadata(key, changes)
    return await agent_out(app, key)


@router.delete("/agents/{agent_id}", summary="Delete an agent and all its memory")
async def delete_agent(agent_id: str, app: App = Depends(botmem_app)) -> dict[str, str]:
    key = await existing_agent(app, agent_id)
    await app.router.wipe(key)  # waits for a running turn
    log.info("api: deleted agent %s (%s)", agent_id, key)
    return {"id": agent_id, "status": "deleted"}


async def existing_agent(app: App, id_: str) -> AgentKey:
    """The key of an agent id that exists; NotFoundError (404) otherwise."""
    key = agent_key(id_)
    if await app.stores.agents.get(key) is None:
        raise NotFoundError(f"no agent {id_!r}")
    return key


async def agent_out(app: App, key: AgentKey, warnings: list[str] | None = None) -> AgentOut:
    state = await app.stores.agents.get(key)
    if state is None:
        raise NotFoundError(f"no agent {agent_id(key)!r}")
    blocks = [BlockOut.of(b) for b in await app.stores.blocks.for_agent(key)]
    model = state.metadata.get("model") or app.settings.llm.model
    return AgentOut(
        id=agent_id(key),
        name=_name(state),
        system=state.metadata.get("system") or base_instructions(app.settings.agent.system),
        model=model,
        embedding=state.metadata.get("embedding") or app.embedder.name,
        llm_config=_llm_config(app, model),
        blocks=blocks,
        memory=MemoryOut(blocks=blocks),
        tools=[_tool(app, name) for name in app.tools.names()],
        tags=list(state.metadata.get("tags") or []),
        description=state.metadata.get("description"),
        metadata={**(state.metadata.get("user_metadata") or {}), "agent_key": key},
        created_at=state.created_at,
        last_run_completion=state.last_active_at,
        warnings=warnings or [],
    )


def _requested_key(metadata: dict[str, Any]) -> AgentKey:
    import re

    key = metadata.get("agent_key")
    if key is None:
        return new_agent_key()
    if not isinstance(key, str) or not re.match(_KEY_PATTERN, key) or len(key) > 300:
        raise BotmemError('metadata.agent_key must be a botmem agent key such as "telegram:42"')
    return key


def _spec(block: BlockCreate, n: int, app: App) -> BlockSpec:
    limit = block.limit or max(app.settings.agent.block_limit, len(block.value))
    if len(block.value) > limit:
        raise BotmemError(
            f"memory_blocks[{n}].value is {len(block.value)} characters, over its limit {limit}"
        )
    return BlockSpec(block.label, block.value, limit, block.description or "", block.read_only)


def _tool_warnings(app: App, requested: list[str]) -> list[str]:
    missing = [name for name in requested if app.tools.get(name) is None]
    if not missing:
        return []
    names = ", ".join(missing)
    if app.settings.server.strict_tools:
        raise BotmemError(f"tools: this server does not have {names} ([server] strict_tools)")
    log.warning("api: tools this server does not have were ignored: %r", missing)
    return [f"tools this server does not have were ignored: {names}"]


def _metadata(body: AgentCreate, key: AgentKey) -> dict[str, Any]:
    user = {k: v for k, v in body.metadata.items() if k != "agent_key"}
    return {
        "name": body.name or f"agent {agent_id(key).removeprefix('agent-')[:8]}",
        "model": body.model,
        "system": body.system,
        "embedding": body.embedding,
        "description": body.description,
        "tags": body.tags or None,
        "user_metadata": user or None,
    }


def _name(state: AgentState) -> str:
    return str(state.metadata.get("name") or state.agent_key)


def _llm_config(app: App, model: str) -> LlmConfigOut:
    provider, _, name = model.rpartition("/")
    return LlmConfigOut(
        model=name or model,
        model_endpoint_type=provider if provider in _ENDPOINT_TYPES else "openai",
        context_window=app.llm.context_window,
        handle=model,
        model_endpoint=app.settings.llm.api_base or None,
    )


_ENDPOINT_TYPES = {"openai", "anthropic", "google_ai", "azure", "groq", "ollama", "mistral"}


def _tool(app: App, name: str) -> ToolOut:
    tool = app.tools.get(name)
    schema = next((s for s in app.tools.schemas() if s["function"]["name"] == name), None)
    return ToolOut(
        id=f"tool-{name}",
        name=name,
        description=tool.description if tool is not None else None,
        json_schema=schema["function"] if schema else None,
    )
