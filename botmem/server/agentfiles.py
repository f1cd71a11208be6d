"""/v1/agents/{agent_id}/export and /v1/agents/import: agents as Letta agent files (.af).

An export is Letta's AgentFileSchema for one agent (blocks, tools, messages and which of them
are in context), plus botmem's full export under "botmem" so that importing it into another
botmem loses nothing. An import takes a Letta .af (any number of agents), one botmem wrote,
or botmem's own export (`botmem memory export`); every agent gets a new id, and the answer
lists, besides the new ids, what the file had that botmem did not import.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from botmem import __version__
from botmem.agentfile import (
    AgentFileError,
    check_export,
    export_agent,
    import_agent,
    without_messages,
)
from botmem.app import App, utc_now
from botmem.errors import BotmemError
from botmem.letta_agentfile import AgentProfile, to_letta
from botmem.letta_import import read_agent_file
from botmem.server.agents import agent_out, existing_agent
from botmem.server.api import botmem_app
from botmem.server.ids import agent_id, new_agent_key
from botmem.server.scrubbing import ScrubbedRoute
from botmem.types import AgentKey
from botmem.unicode import scrub_json

log = logging.getLogger(__name__)
router = APIRouter(tags=["agent files"], route_class=ScrubbedRoute)
MAX_FILE_BYTES = 200 * 1024 * 1024
COPY_SUFFIX = "_copy"


class ImportOut(BaseModel):
    agent_ids: list[str]
    skipped: list[str] = Field(default_factory=list)
    """botmem's own: what the file had that was not imported (also logged)."""


@router.get("/agents/{agent_id}/export", summary="Export an agent as a Letta agent file")
async def export_agent_file(
    agent_id: str,
    scrub_messages: bool = Query(False, description="Leave the conversation out."),
    use_legacy_format: bool = Query(False, description="Not supported: always the v2 format."),
    conversation_id: str | None = Query(None, description="Not supported: one conversation."),
    max_steps: int | None = Query(None, description="Ignored."),
    app: App = Depends(botmem_app),
) -> JSONResponse:
    if use_legacy_format:
        raise BotmemError("use_legacy_format: botmem writes only the current (v2) agent file")
    if conversation_id is not None:
        raise BotmemError("conversation_id: a botmem agent has a single conversation")
    key = await existing_agent(app, agent_id)
    now = utc_now()
    async with app.router.exclusive(key):  # between turns: no half-written turn in the file
        export = await export_agent(app.stores, key, now)
    if scrub_messages:
        export = without_messages(export)
    document = to_letta(export, await _profile(app, key), now, f"botmem {__version__}")
    log.info("api: exported agent %s (%s)", agent_id, key)
    return JSONResponse(document)


@router.post("/agents/import", response_model=ImportOut, summary="Import an agent file")
async def import_agent_file(
    file: UploadFile = File(..., description="A Letta .af or a botmem export (JSON)."),
    name: str | None = Form(None, max_length=200),
    override_name: str | None = Form(None, max_length=200),
    model: str | None = Form(None, max_length=200),
    override_model_handle: str | None = Form(None, max_length=200),
    append_copy_suffix: bool = Form(False),
    strip_messages: bool = Form(False),
    app: App = Depends(botmem_app),
) -> ImportOut:
    data = await _read_json(file)
    read = read_agent_file(data, app.tools.names(), utc_now())
    new_name = name or override_name
    if len(read.agents) > 1 and new_name:
        raise BotmemError("name: the file has several agents; a new name needs one")
    changes = {"name": new_name, "model": model or override_model_handle}
    for export in read.agents:  # all of them before any is written
        check_export(export)
    exports = [
        _with_settings(without_messages(e) if strip_messages else e, changes, append_copy_suffix)
        for e in read.agents
    ]
    ids = [agent_id(await _create(app, export)) for export in exports]
    for skipped in read.skipped:
        log.warning("api: import %s: skipped %s", file.filename or "upload", skipped)
    log.info("api: imported %s as %s", file.filename or "upload", ", ".join(ids))
    return ImportOut(agent_ids=ids, skipped=read.skipped)


async def _create(app: App, export: dict[str, Any]) -> AgentKey:
    key = new_agent_key()
    async with app.router.exclusive(key):
        await import_agent(app.stores, app.retriever, export, key)
        await app.runner.ensure_agent(key)  # the configured blocks the file did not have
    app.indexer.notify()  # the imported messages become searchable by meaning
    return key


async def _read_json(file: UploadFile) -> Any:
    raw = await file.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise AgentFileError(f"file: over {MAX_FILE_BYTES // (1024 * 1024)} MB")
    try:
        return scrub_json(json.loads(raw))
    except UnicodeDecodeError as exc:
        raise AgentFileError("file: not UTF-8 text (an agent file is JSON)") from exc
    except ValueError as exc:
        raise AgentFileError(f"file: not JSON ({exc})") from exc


def _with_settings(
    export: dict[str, Any], changes: dict[str, str | None], copy_suffix: bool
) -> dict[str, Any]:
    """The export with the request's name and model (Letta's import overrides)."""
    current = export.get("metadata")
    metadata = {**(current if isinstance(current, dict) else {})}
    metadata.update((k, v) for k, v in changes.items() if v)
    if copy_suffix:
        metadata["name"] = f"{metadata.get('name') or 'agent'}{COPY_SUFFIX}"
    return {**export, "metadata": metadata}


async def _profile(app: App, key: AgentKey) -> AgentProfile:
    agent = await agent_out(app, key)
    embedder = app.embedder
    local = app.settings.embeddings.provider == "local"
    return AgentProfile(
        name=agent.name,
        system=agent.system,
        agent_type=agent.agent_type,
        llm_config=agent.llm_config.model_dump(),
        embedding_config={
            "embedding_endpoint_type": "hugging-face" if local else "openai",
            "embedding_model": embedder.name,
            "embedding_dim": embedder.dimensions,
            "embedding_chunk_size": 300,
            "handle": None if local else app.settings.embeddings.model,
        },
        description=agent.description,
        tags=agent.tags,
        metadata={k: v for k, v in agent.metadata.items() if k != "agent_key"},
        tools=[schema["function"] for schema in app.tools.schemas()],
    )
