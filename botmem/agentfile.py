"""Export an agent to a JSON document and import it back (blocks, messages, summary).

The document is versioned (`format`, `version`) so later releases can read older exports.
Archival passages travel as text with their tags and times; vectors are rebuilt on import.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from botmem.agent.retrieval import Retriever
from botmem.errors import BotmemError
from botmem.stores.base import Passage, Stores
from botmem.types import AgentKey, BlockSpec, Message, ToolCall

ALL_PASSAGES = 1_000_000_000
FORMAT = "botmem-agent"
VERSION = 1


class AgentFileError(BotmemError):
    """The file is not a botmem agent export, or the target agent already exists."""


async def export_agent(stores: Stores, agent_key: AgentKey, now: datetime) -> dict[str, Any]:
    state = await stores.agents.get(agent_key)
    if state is None:
        raise AgentFileError(f"no agent {agent_key!r} in this database")
    messages = await stores.history.since(agent_key, 0)
    in_context = next(
        (i for i, m in enumerate(messages) if (m.id or 0) >= state.context_start_id), len(messages)
    )
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": now.isoformat(),
        "agent_key": agent_key,
        "summary": state.summary,
        "summary_at": state.summary_at.isoformat() if state.summary_at else None,
        "context_start_index": in_context,
        "blocks": [_block(b) for b in await stores.blocks.for_agent(agent_key)],
        "messages": [_message(m) for m in messages],
        "archival": [
            _passage(p)
            for p in reversed(await stores.archival.select(agent_key, limit=ALL_PASSAGES))
        ],
    }


async def import_agent(
    stores: Stores,
    retriever: Retriever,
    data: dict[str, Any],
    agent_key: AgentKey | None = None,
    *,
    replace: bool = False,
) -> AgentKey:
    """Create the agent from an export; `replace` wipes an existing agent of that key first.

    Passages are embedded again through `retriever` (vectors are not part of the file).
    """
    if data.get("format") != FORMAT or not isinstance(data.get("version"), int):
        raise AgentFileError("not a botmem agent export (missing format/version)")
    if data["version"] > VERSION:
        raise AgentFileError(f"export version {data['version']} is newer than this botmem reads")
    key = agent_key or data["agent_key"]
    if await stores.agents.get(key) is not None:
        if not replace:
            raise AgentFileError(f"agent {key!r} already exists (wipe it or use --replace)")
        await stores.wipe_agent(key)
    await stores.agents.ensure(key)
    for block in data["blocks"]:
        await _restore_block(stores, key, block)
    stored = await stores.history.append([_to_message(key, m) for m in data["messages"]])
    new_ids = {m.get("id"): s.id for m, s in zip(data["messages"], stored, strict=True)}
    for passage in data.get("archival", []):
        await retriever.insert_passage(_to_passage(key, passage, new_ids))
    start = data.get("context_start_index", 0)
    start_id = (
        stored[start].id if start < len(stored) else (stored[-1].id or 0) + 1 if stored else 0
    )
    await stores.agents.save_summary(key, data.get("summary", ""), start_id or 0)
    return key


async def _restore_block(stores: Stores, key: AgentKey, block: dict[str, Any]) -> None:
    spec = BlockSpec(
        block["label"],
        block["value"],
        block["limit"],
        block.get("description", ""),
        block.get("read_only", False),
    )
    shared = block.get("shared_name")
    attached = await stores.blocks.attach(key, spec, shared_name=shared)
    if not shared and attached.value != spec.value:
        await stores.blocks.edit(key, spec.label, lambda _b: spec.value)


def _block(block: Any) -> dict[str, Any]:
    return {
        "label": block.label,
        "value": block.value,
        "limit": block.limit,
        "description": block.description,
        "read_only": block.read_only,
        "shared_name": block.shared_name,
    }


def _message(msg: Message) -> dict[str, Any]:
    return {
        "id": msg.id,
        "role": msg.role,
        "content": msg.content,
        "created_at": msg.created_at.isoformat(),
        "tool_calls": [asdict(c) for c in msg.tool_calls],
        "tool_call_id": msg.tool_call_id,
        "name": msg.name,
        "tokens": msg.tokens,
    }


def _to_message(key: AgentKey, data: dict[str, Any]) -> Message:
    return Message(
        agent_key=key,
        role=data["role"],
        content=data.get("content"),
        created_at=datetime.fromisoformat(data["created_at"]),
        tool_calls=tuple(ToolCall(**c) for c in data.get("tool_calls") or ()),
        tool_call_id=data.get("tool_call_id"),
        name=data.get("name"),
        tokens=data.get("tokens", 0),
    )


def _passage(passage: Passage) -> dict[str, Any]:
    return {
        "text": passage.text,
        "created_at": passage.created_at.isoformat(),
        "tags": list(passage.tags),
        "source_message_ids": list(passage.source_message_ids),
    }


def _to_passage(key: AgentKey, data: dict[str, Any], new_ids: dict[Any, int | None]) -> Passage:
    sources = (new_ids.get(old) for old in data.get("source_message_ids", []))
    return Passage(
        agent_key=key,
        text=data["text"],
        created_at=datetime.fromisoformat(data["created_at"]),
        tags=tuple(data.get("tags", [])),
        source_message_ids=tuple(i for i in sources if i is not None),
    )
