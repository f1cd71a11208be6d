"""/v1 routes for core memory blocks: an agent's by label, and any block by id.

A block made over /v1/blocks is a shared block (named by its id): attach it to many agents
and an edit through one is what all of them see on their next step. /v1/blocks lists the
shared blocks; an agent's private blocks are listed under its core-memory, and a private
block attached to a second agent becomes shared.

Value edits are not serialized with the agent's turns: they go through the store's
versioned edit (applied to the current value, retried on a conflict), the same path the
agents' memory tools use, so an edit here and one by a running turn both survive, and the
turn's next step shows it, as it would an edit of a shared block by another agent. Waiting
for the turn would make a PATCH hang on a slow LLM, and a shared block has no one agent to
wait for. Attaching and detaching do wait (`router.exclusive`): the set of blocks changes
between turns, never mid-turn, and never races a wipe of the agent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from botmem.app import App
from botmem.errors import BotmemError, NotFoundError
from botmem.server.agents import agent_out, existing_agent
from botmem.server.api import ConflictError, botmem_app
from botmem.server.ids import agent_id as agent_id_of
from botmem.server.paging import Page
from botmem.server.schemas import AgentOut, BlockCreate, BlockOut, block_store_id
from botmem.server.schemas import block_id as api_block_id
from botmem.server.scrubbing import ScrubbedRoute
from botmem.types import AgentKey, Block, BlockEdit, BlockSpec

log = logging.getLogger(__name__)
router = APIRouter(tags=["blocks"], route_class=ScrubbedRoute)
API_EDITOR: AgentKey = "api"
"""Who an edit over /v1/blocks/{id} is recorded as (not an agent key: those have a colon)."""

Edit = Callable[[Callable[[Block], str]], Awaitable[BlockEdit]]


class BlockUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    value: str | None = Field(default=None, max_length=1_000_000)
    limit: int | None = Field(default=None, ge=1, le=1_000_000)
    description: str | None = Field(default=None, max_length=10_000)
    read_only: bool | None = Field(
        default=None, description="Read-only for the agent's own tools (as in Letta)."
    )
    label: str | None = Field(default=None, max_length=100, description="Cannot be changed.")


# --- an agent's blocks, by label ------------------------------------------------------


@router.get(
    "/agents/{agent_id}/core-memory/blocks",
    response_model=list[BlockOut],
    summary="List an agent's core memory blocks",
)
async def list_agent_blocks(
    agent_id: str, page: Page = Depends(), app: App = Depends(botmem_app)
) -> list[BlockOut]:
    key = await existing_agent(app, agent_id)
    blocks = [BlockOut.of(b) for b in await app.stores.blocks.for_agent(key)]
    return page.apply(blocks, lambda b: b.id)


@router.get(
    "/agents/{agent_id}/core-memory/blocks/{block_label}",
    response_model=BlockOut,
    summary="Retrieve an agent's block",
)
async def retrieve_agent_block(
    agent_id: str, block_label: str, app: App = Depends(botmem_app)
) -> BlockOut:
    key = await existing_agent(app, agent_id)
    return BlockOut.of(await _agent_block(app, key, block_label))


@router.patch(
    "/agents/{agent_id}/core-memory/blocks/{block_label}",
    response_model=BlockOut,
    summary="Modify an agent's block (a shared block changes for every agent using it)",
)
async def modify_agent_block(
    agent_id: str, block_label: str, body: BlockUpdate, app: App = Depends(botmem_app)
) -> BlockOut:
    key = await existing_agent(app, agent_id)
    block = await _agent_block(app, key, block_label)

    def edit(change: Callable[[Block], str]) -> Awaitable[BlockEdit]:
        return app.stores.blocks.edit(key, block_label, change)

    await _modify(app, block, body, edit)
    return BlockOut.of(await _agent_block(app, key, block_label))


@router.patch(
    "/agents/{agent_id}/core-memory/blocks/attach/{block_id}",
    response_model=AgentOut,
    summary="Attach a block to an agent (under the block's label)",
)
async def attach_block(agent_id: str, block_id: str, app: App = Depends(botmem_app)) -> AgentOut:
    key = await existing_agent(app, agent_id)
    wanted = await _block(app, block_id)
    async with app.router.exclusive(key):
        attached = await app.stores.blocks.attach_by_id(key, wanted.id)
    if attached.id != wanted.id:
        raise ConflictError(
            f"agent {agent_id} already has a block labelled {attached.label!r} "
            f"({api_block_id(attached.id)}); detach it first"
        )
    log.info("api: attached block %s to %s", block_id, key)
    return await agent_out(app, key)


@router.patch(
    "/agents/{agent_id}/core-memory/blocks/detach/{block_id}",
    response_model=AgentOut,
    summary="Detach a block from an agent (the block itself stays)",
)
async def detach_block(agent_id: str, block_id: str, app: App = Depends(botmem_app)) -> AgentOut:
    key = await existing_agent(app, agent_id)
    store_id = block_store_id(block_id)
    async with app.router.exclusive(key):
        detached = await app.stores.blocks.detach_by_id(key, store_id)
    if not detached:
        raise NotFoundError(f"agent {agent_id} has no block {block_id!r}")
    log.info("api: detached block %s from %s", block_id, key)
    return await agent_out(app, key)


# --- every block, by id ---------------------------------------------------------------


@router.post("/blocks/", response_model=BlockOut, summary="Create a shared block")
async def create_block(body: BlockCreate, app: App = Depends(botmem_app)) -> BlockOut:
    limit = body.limit or max(app.settings.agent.block_limit, len(body.value))
    _check_fits(body.value, limit)
    spec = BlockSpec(body.label, body.value, limit, body.description or "", body.read_only)
    block = await app.stores.blocks.create_shared(spec)
    log.info("api: created block %s (%s)", api_block_id(block.id), block.label)
    return BlockOut.of(block)


@router.get("/blocks/", response_model=list[BlockOut], summary="List shared blocks")
async def list_blocks(
    page: Page = Depends(),
    label: str | None = Query(None, description="Only blocks with this label."),
    app: App = Depends(botmem_app),
) -> list[BlockOut]:
    blocks = [BlockOut.of(b) for b in await app.stores.blocks.shared(label)]
    return page.apply(blocks, lambda b: b.id)


@router.get("/blocks/{block_id}", response_model=BlockOut, summary="Retrieve a block")
async def retrieve_block(block_id: str, app: App = Depends(botmem_app)) -> BlockOut:
    return BlockOut.of(await _block(app, block_id))


@router.patch(
    "/blocks/{block_id}",
    response_model=BlockOut,
    summary="Modify a block (for every agent using it)",
)
async def modify_block(
    block_id: str, body: BlockUpdate, app: App = Depends(botmem_app)
) -> BlockOut:
    block = await _block(app, block_id)

    def edit(change: Callable[[Block], str]) -> Awaitable[BlockEdit]:
        return app.stores.blocks.edit_by_id(block.id, change, editor=API_EDITOR)

    await _modify(app, block, body, edit)
    return BlockOut.of(await _block(app, block_id))


@router.delete("/blocks/{block_id}", summary="Delete a block, detaching it from every agent")
async def delete_block(block_id: str, app: App = Depends(botmem_app)) -> dict[str, str]:
    if not await app.stores.blocks.delete(block_store_id(block_id)):
        raise NotFoundError(f"no block {block_id!r}")
    log.info("api: deleted block %s", block_id)
    return {"id": block_id, "status": "deleted"}


@router.get(
    "/blocks/{block_id}/agents",
    response_model=list[AgentOut],
    summary="List the agents a block is attached to",
)
async def list_block_agents(
    block_id: str, page: Page = Depends(), app: App = Depends(botmem_app)
) -> list[AgentOut]:
    block = await _block(app, block_id)
    states = [
        await app.stores.agents.get(key) for key in await app.stores.blocks.agents_of(block.id)
    ]
    found = sorted((s for s in states if s is not None), key=lambda s: (s.created_at, s.agent_key))
    chosen = page.apply(found, lambda s: agent_id_of(s.agent_key))
    return [await agent_out(app, s.agent_key) for s in chosen]


# --- helpers --------------------------------------------------------------------------


async def _agent_block(app: App, key: AgentKey, label: str) -> Block:
    block = await app.stores.blocks.get(key, label)
    if block is None:
        raise NotFoundError(f"agent {agent_id_of(key)} has no block labelled {label!r}")
    return block


async def _block(app: App, id_: str) -> Block:
    block = await app.stores.blocks.by_id(block_store_id(id_))
    if block is None:
        raise NotFoundError(f"no block {id_!r}")
    return block


async def _modify(app: App, block: Block, body: BlockUpdate, edit: Edit) -> None:
    """Apply a PATCH: the value through `edit` (versioned), then limit, description and
    read_only. Refused (nothing written) when the value is over the limit it would have,
    or the request would rename it."""
    if body.label is not None and body.label != block.label:
        raise BotmemError(f"label: a block cannot be renamed (it is {block.label!r})")
    if body.value is None and body.limit is not None and len(block.value) > body.limit:
        raise BotmemError(
            f"limit {body.limit} is below the length of the block's value "
            f"({len(block.value)} characters)"
        )
    if body.value is not None:
        await edit(_new_value(body))
    if body.limit is not None or body.description is not None or body.read_only is not None:
        await app.stores.blocks.update(
            block.id, limit=body.limit, description=body.description, read_only=body.read_only
        )


def _new_value(body: BlockUpdate) -> Callable[[Block], str]:
    value = body.value or ""

    # Read-only binds the agent's tools, not the API (Letta's meaning; the admin page too).
    def change(current: Block) -> str:  # checked against the block as the edit finds it
        _check_fits(value, current.limit if body.limit is None else body.limit)
        return value

    return change


def _check_fits(value: str, limit: int) -> None:
    if len(value) > limit:
        raise BotmemError(
            f"value is {len(value)} characters, over the block's limit of {limit} "
            "(send a larger limit with it)"
        )
