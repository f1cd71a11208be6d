"""Export an agent to a JSON document and import it back (blocks, messages, summary, archival).

The document is versioned (`format`, `version`) so later releases can read older exports.
Archival passages travel as text with their tags and times; vectors are rebuilt on import.
Version 2 adds the agent's settings (`metadata`: name, model, system prompt, timezone, ...);
version 1 files still import. An import reads the whole file before writing anything, so a malformed
file is refused with a message naming the bad part and leaves the database untouched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from dataclasses import replace as with_changes
from datetime import UTC, datetime
from typing import Any

from botmem.agent.retrieval import Retriever
from botmem.agent.timezones import TIMEZONE_KEY
from botmem.errors import BotmemError
from botmem.stores.base import Passage, Stores
from botmem.types import AgentKey, BlockSpec, Message, ToolCall

ALL_PASSAGES = 1_000_000_000
FORMAT = "botmem-agent"
VERSION = 2
ROLES = ("system", "user", "assistant", "tool")
SETTINGS = ("name", "model", "system", "embedding", "description", "tags", "user_metadata")
"""The agent metadata an export carries: its settings. The rest is this database's
bookkeeping (token usage, which message ids consolidation has seen) and would be wrong in
another one."""


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
        "metadata": _settings(state.metadata),
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


def without_messages(data: dict[str, Any]) -> dict[str, Any]:
    """The export with no conversation (Letta's scrub_messages / strip_messages)."""
    archival = [{**p, "source_message_ids": []} for p in data.get("archival") or []]
    return {**data, "messages": [], "context_start_index": 0, "archival": archival}


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
    check_format(data)
    key = agent_key or data.get("agent_key")
    if not isinstance(key, str) or not key:
        raise AgentFileError("malformed botmem agent export: agent_key is missing")
    parsed = _parse(key, data)
    if await stores.agents.get(key) is not None:
        if not replace:
            raise AgentFileError(f"agent {key!r} already exists (wipe it or use --replace)")
        await stores.wipe_agent(key)
    await stores.agents.ensure(key)
    if parsed.metadata:
        await stores.agents.set_metadata(key, parsed.metadata)
    for spec, shared_name in parsed.blocks:
        await _restore_block(stores, key, spec, shared_name)
    stored = await stores.history.append(parsed.messages)
    new_ids = {old: s.id for old, s in zip(parsed.message_ids, stored, strict=True)}
    new_ids.pop(None, None)
    for passage, old_sources in parsed.passages:
        sources = (new_ids.get(old) for old in old_sources)
        kept = tuple(i for i in sources if i is not None)
        await retriever.insert_passage(with_changes(passage, source_message_ids=kept))
    start = parsed.context_start_index
    start_id = (
        stored[start].id if start < len(stored) else (stored[-1].id or 0) + 1 if stored else 0
    )
    await stores.agents.save_summary(key, parsed.summary, start_id or 0)
    return key


def check_export(data: Any) -> None:
    """AgentFileError (naming the bad part) unless import_agent can read `data`."""
    check_format(data)
    _parse("check:export", data)


def check_format(data: Any) -> None:
    """AgentFileError unless `data` is a botmem export this version reads."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise AgentFileError("not a botmem agent export (missing format/version)")
    version = data.get("version")
    if not isinstance(version, int):
        raise AgentFileError("not a botmem agent export (missing format/version)")
    if version > VERSION:
        raise AgentFileError(f"export version {version} is newer than this botmem reads")


@dataclass(frozen=True)
class _Parsed:
    metadata: dict[str, Any]
    blocks: list[tuple[BlockSpec, str | None]]
    messages: list[Message]
    message_ids: list[int | str | None]
    passages: list[tuple[Passage, list[int | str | None]]]
    summary: str
    context_start_index: int


def _parse(key: AgentKey, data: dict[str, Any]) -> _Parsed:
    """Everything the import writes, read and checked first."""
    part = "the file"
    try:
        part = "metadata"
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise TypeError("metadata must be an object")
        metadata = _settings(metadata)
        part = "blocks"
        blocks = [_to_block(b) for b in _list(data, "blocks")]
        part = "messages"
        raw_messages = _list(data, "messages")
        messages = [_to_message(key, m) for m in raw_messages]
        part = "archival"
        passages = [_to_passage(key, p) for p in _list(data, "archival")]
        part = "summary"
        summary = str(data.get("summary") or "")
        start = int(data.get("context_start_index") or 0)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AgentFileError(f"malformed botmem agent export: {part}: {_reason(exc)}") from exc
    ids = [_file_id(m.get("id")) for m in raw_messages]
    return _Parsed(metadata, blocks, messages, ids, passages, summary, max(0, start))


def _settings(metadata: dict[str, Any]) -> dict[str, Any]:
    keys = (*SETTINGS, TIMEZONE_KEY)
    return {k: v for k, v in metadata.items() if k in keys and v is not None}


def _list(data: dict[str, Any], field: str) -> list[dict[str, Any]]:
    items = data.get(field) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise TypeError(f"{field} must be a list of objects")
    return items


def _reason(exc: BaseException) -> str:
    return f"missing {exc}" if isinstance(exc, KeyError) else str(exc)


async def _restore_block(
    stores: Stores, key: AgentKey, spec: BlockSpec, shared: str | None
) -> None:
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


def _to_block(data: dict[str, Any]) -> tuple[BlockSpec, str | None]:
    label, value, limit = data["label"], data["value"], data["limit"]
    if not isinstance(label, str) or not label or not isinstance(value, str):
        raise TypeError("a block needs a text label and value")
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"block {label!r}: limit must be a positive number")
    description = data.get("description") or ""
    spec = BlockSpec(
        label, value, max(limit, len(value)), str(description), bool(data.get("read_only"))
    )
    shared = data.get("shared_name")
    return spec, str(shared) if shared else None


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
    role = data["role"]
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    content = data.get("content")
    if content is not None and not isinstance(content, str):
        raise TypeError("content must be text or null")
    return Message(
        agent_key=key,
        role=role,
        content=content,
        created_at=_time(data["created_at"]),
        tool_calls=tuple(_to_call(c) for c in data.get("tool_calls") or ()),
        tool_call_id=_text_or_none(data.get("tool_call_id")),
        name=_text_or_none(data.get("name")),
        tokens=int(data.get("tokens") or 0),
    )


def _to_call(data: dict[str, Any]) -> ToolCall:
    return ToolCall(str(data["id"]), str(data["name"]), str(data["arguments"]))


def _passage(passage: Passage) -> dict[str, Any]:
    return {
        "text": passage.text,
        "created_at": passage.created_at.isoformat(),
        "tags": list(passage.tags),
        "source_message_ids": list(passage.source_message_ids),
    }


def _to_passage(key: AgentKey, data: dict[str, Any]) -> tuple[Passage, list[int | str | None]]:
    text = data["text"]
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a passage needs text")
    tags = data.get("tags") or []
    if not isinstance(tags, list):
        raise TypeError("tags must be a list")
    passage = Passage(key, text, _time(data["created_at"]), tuple(str(t) for t in tags))
    sources = data.get("source_message_ids") or []
    if not isinstance(sources, list):
        raise TypeError("source_message_ids must be a list")
    return passage, [_file_id(i) for i in sources]


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("times must be ISO 8601 text")
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _file_id(value: Any) -> int | str | None:
    """A message id as the file wrote it (only used to match passages to their messages)."""
    return value if isinstance(value, int | str) else None


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
