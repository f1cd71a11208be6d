"""Letta's agent file (.af, its AgentFileSchema "v2"), written from a botmem export.

An .af lists `agents` (each with `block_ids`, `tool_ids`, `messages` and the ids of those in
its context), and beside them the `blocks`, `tools`, `groups`, `files`, `sources` and
`mcp_servers` they refer to by file-local ids (``agent-0``, ``block-3``). botmem adds one key,
``botmem``: its own full export (botmem/agentfile.py), so a botmem -> botmem round trip keeps
what the .af cannot say (shared blocks, archival passages, the summary, per-message tokens);
Letta ignores keys it does not know. Reading an .af is in letta_import.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

BOTMEM_KEY = "botmem"
AGENT_ID = "agent-0"
LETTA_TOOL_TYPES = {
    "send_message": "letta_core",
    "conversation_search": "letta_core",
    "archival_memory_insert": "letta_core",
    "archival_memory_search": "letta_core",
    "core_memory_append": "letta_memory_core",
    "core_memory_replace": "letta_memory_core",
    "memory_rethink": "letta_sleeptime_core",
}
"""botmem's tools that Letta has built in under the same name; only these go in `tools`
(the others, e.g. the check-in tools, have no code Letta could run)."""
SUMMARY_ALERT = (
    "Note: prior messages have been hidden from view due to conversation memory constraints.\n"
    "The following is a summary of the previous messages:\n"
)
"""How Letta puts a summary in the context (a user message holding a system alert)."""


@dataclass(frozen=True)
class AgentProfile:
    """What the .af says about an agent beyond its memory: settings, model, tools."""

    name: str
    system: str
    agent_type: str
    llm_config: dict[str, Any]
    embedding_config: dict[str, Any] | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)
    """OpenAI function schemas ({name, description, parameters}) of the agent's tools."""


def to_letta(
    export: dict[str, Any], profile: AgentProfile, now: datetime, by: str
) -> dict[str, Any]:
    """The .af of one agent from its botmem `export`; `by` names the exporting program."""
    blocks = [_block(n, b) for n, b in enumerate(export["blocks"])]
    tools = [
        _tool(n, schema)
        for n, schema in enumerate(t for t in profile.tools if t["name"] in LETTA_TOOL_TYPES)
    ]
    messages, in_context = _messages(export, profile, now)
    agent = {
        **_agent_settings(profile),
        "id": AGENT_ID,
        "block_ids": [b["id"] for b in blocks],
        "tool_ids": [t["id"] for t in tools],
        "in_context_message_ids": in_context,
        "messages": messages,
        "files_agents": [],
        "group_ids": [],
    }
    return {
        "agents": [agent],
        "groups": [],
        "blocks": blocks,
        "files": [],
        "sources": [],
        "tools": tools,
        "mcp_servers": [],
        "metadata": {"exported_by": by},
        "created_at": now.isoformat(),
        BOTMEM_KEY: export,
    }


def _agent_settings(profile: AgentProfile) -> dict[str, Any]:
    """The CreateAgent fields of an AgentSchema."""
    return {
        "name": profile.name,
        "memory_blocks": [],
        "tools": [],
        "source_ids": [],
        "tool_rules": [],
        "tags": profile.tags,
        "system": profile.system,
        "agent_type": profile.agent_type,
        "llm_config": profile.llm_config,
        "embedding_config": profile.embedding_config,
        "initial_message_sequence": None,
        "include_base_tools": False,
        "include_multi_agent_tools": False,
        "include_base_tool_rules": False,
        "include_default_source": False,
        "description": profile.description,
        "metadata": profile.metadata or None,
        "model": None,
        "embedding": None,
        "message_buffer_autoclear": False,
        "enable_sleeptime": False,
    }


def _block(n: int, block: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"block-{n}",
        "label": block["label"],
        "value": block["value"],
        "limit": block["limit"],
        "description": block.get("description") or "",
        "read_only": bool(block.get("read_only")),
        "metadata": {},
        "is_template": False,
        "template_name": None,
        "preserve_on_migration": False,
    }


def _tool(n: int, schema: dict[str, Any]) -> dict[str, Any]:
    kind = LETTA_TOOL_TYPES[schema["name"]]
    return {
        "id": f"tool-{n}",
        "name": schema["name"],
        "tool_type": kind,
        "description": schema.get("description"),
        "source_type": "python",
        "tags": [kind],
        "source_code": None,
        "json_schema": schema,
        "args_json_schema": None,
        "return_char_limit": 50000,
        "pip_requirements": None,
        "npm_requirements": None,
        "metadata_": {},
    }


def _messages(
    export: dict[str, Any], profile: AgentProfile, now: datetime
) -> tuple[list[dict[str, Any]], list[str]]:
    """Letta's messages (``message-0``, the system prompt, first) and the ids in context.

    Letta keeps the compiled system prompt as the first message of every context and the
    summary as a system alert after it; botmem compiles both per step, so they are made here.
    """
    model = profile.llm_config.get("model")
    history = export["messages"]
    start = export.get("context_start_index", 0)
    out = [_letta_message(0, "system", profile.system, now, model)]
    in_context = [out[0]["id"]]
    for index, message in enumerate(history):
        if index == start and export.get("summary"):
            alert = _summary_alert(export["summary"], message["created_at"])
            out.append(_letta_message(len(out), "user", alert, now, model))
            in_context.append(out[-1]["id"])
        out.append(_from_botmem(len(out), message, model))
        if index >= start:
            in_context.append(out[-1]["id"])
    return out, in_context


def _summary_alert(summary: str, time: str) -> str:
    return json.dumps({"type": "system_alert", "message": SUMMARY_ALERT + summary, "time": time})


def _letta_message(
    n: int, role: str, text: str | None, when: datetime | str, model: Any
) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"message-{n}",
        "role": role,
        "content": [{"type": "text", "text": text}] if text else [],
        "name": None,
        "model": model,
        "agent_id": AGENT_ID,
        "tool_calls": None,
        "tool_call_id": None,
        "tool_returns": [],
        "created_at": when if isinstance(when, str) else when.isoformat(),
    }


def _from_botmem(n: int, message: dict[str, Any], model: Any) -> dict[str, Any]:
    out = _letta_message(n, message["role"], message["content"], message["created_at"], model)
    out["name"] = message.get("name")
    calls = message.get("tool_calls") or []
    if calls:
        out["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
            for call in calls
        ]
    if message["role"] == "tool":
        out["tool_call_id"] = message.get("tool_call_id")
        out["tool_returns"] = [
            {
                "tool_call_id": message.get("tool_call_id"),
                "status": "success",
                "func_response": message["content"],
            }
        ]
    return out
