"""Read an agent file: Letta's .af (v2), or botmem's own export, into botmem exports.

Each agent of an .af becomes one botmem export (botmem/agentfile.py), which import_agent
then writes: its blocks, its conversation (the messages in Letta's context stay in botmem's)
and its settings. What botmem has no place for is listed in `skipped` instead of being
silently lost: tools it lacks (custom Python tools), tool rules, multi-agent groups, files,
sources (folders), MCP servers, tool environment variables and secrets (never their values).
An .af that botmem wrote carries botmem's full export under "botmem"; that one is used as is.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from botmem import agentfile
from botmem.agentfile import AgentFileError
from botmem.letta_agentfile import BOTMEM_KEY
from botmem.llm.tokens import count_tokens
from botmem.types import Message, Role, ToolCall

DEFAULT_LIMIT = 5000
_READ = ConfigDict(extra="ignore")


@dataclass
class AgentFileImport:
    agents: list[dict[str, Any]]
    """One botmem export per agent, in the file's order."""
    skipped: list[str] = field(default_factory=list)
    """What the file had that botmem did not import, one sentence each."""


def read_agent_file(data: Any, known_tools: Collection[str], now: datetime) -> AgentFileImport:
    """The agents of a parsed agent file; AgentFileError (with the reason) for anything else."""
    if not isinstance(data, dict):
        raise AgentFileError("not an agent file: the JSON is not an object")
    if data.get("format") == agentfile.FORMAT:
        agentfile.check_format(data)
        return AgentFileImport([data])
    agents = data.get("agents")
    if isinstance(data.get(BOTMEM_KEY), dict) and isinstance(agents, list) and len(agents) == 1:
        agentfile.check_format(data[BOTMEM_KEY])
        return AgentFileImport([data[BOTMEM_KEY]])
    if "agents" not in data:
        if "core_memory" in data or "in_context_message_indices" in data:
            raise AgentFileError(
                "this is Letta's legacy single-agent file (v1), which botmem does not read: "
                "export it again from Letta without use_legacy_format"
            )
        raise AgentFileError("not an agent file: no 'agents' list (Letta .af) or botmem format")
    try:
        parsed = _File.model_validate(data)
    except ValidationError as exc:
        raise AgentFileError(f"malformed agent file: {_first_errors(exc)}") from exc
    if not parsed.agents:
        raise AgentFileError("the agent file has no agents")
    return _Reader(parsed, known_tools, now).read()


class _Function(BaseModel):
    model_config = _READ
    name: str
    arguments: str | dict[str, Any] = ""


class _ToolCall(BaseModel):
    model_config = _READ
    id: str
    function: _Function


class _ToolReturn(BaseModel):
    model_config = _READ
    tool_call_id: Any = None
    func_response: str | None = None


class _Message(BaseModel):
    model_config = _READ
    id: str | None = None
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None
    tool_returns: list[_ToolReturn] | None = None
    created_at: datetime | None = None


class _Block(BaseModel):
    model_config = _READ
    id: str | None = None
    label: str
    value: str = ""
    limit: int | None = None
    description: str | None = None
    read_only: bool | None = False


class _Tool(BaseModel):
    model_config = _READ
    id: str
    name: str
    tool_type: str | None = None


class _Agent(BaseModel):
    model_config = _READ
    id: str
    name: str | None = None
    system: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    llm_config: dict[str, Any] | None = None
    block_ids: list[str] | None = None
    memory_blocks: list[_Block] | None = None
    tool_ids: list[str] | None = None
    tool_rules: list[dict[str, Any]] | None = None
    messages: list[_Message] | None = None
    in_context_message_ids: list[str] | None = None
    tool_exec_environment_variables: dict[str, Any] | list[Any] | None = None
    secrets: dict[str, Any] | None = None


class _Group(BaseModel):
    model_config = _READ
    id: str | None = None
    agent_ids: list[str] | None = None
    manager_config: dict[str, Any] | None = None


class _McpServer(BaseModel):
    model_config = _READ
    server_name: str | None = None


class _File(BaseModel):
    model_config = _READ
    agents: list[_Agent]
    groups: list[_Group] | None = None
    blocks: list[_Block] | None = None
    tools: list[_Tool] | None = None
    files: list[dict[str, Any]] | None = None
    sources: list[dict[str, Any]] | None = None
    mcp_servers: list[_McpServer] | None = None
    skills: list[dict[str, Any]] | None = None


class _Reader:
    def __init__(self, parsed: _File, known_tools: Collection[str], now: datetime):
        self._file = parsed
        self._known = set(known_tools)
        self._now = now
        self._blocks = {b.id: b for b in parsed.blocks or [] if b.id}
        self._tools = {t.id: t for t in parsed.tools or []}
        self._shared = self._shared_names()
        self.skipped: list[str] = []

    def read(self) -> AgentFileImport:
        agents = [self._agent(agent) for agent in self._file.agents]
        self._skip_tools()
        self._skip_file_level()
        return AgentFileImport(agents, self.skipped)

    def _shared_names(self) -> dict[str, str]:
        """Blocks that several agents of the file use stay shared between them."""
        uses = Counter(i for a in self._file.agents for i in dict.fromkeys(a.block_ids or []))
        run = uuid.uuid4().hex[:8]
        return {
            i: f"{self._blocks[i].label}-{run}"
            for i, n in uses.items()
            if n > 1 and i in self._blocks
        }

    def _agent(self, agent: _Agent) -> dict[str, Any]:
        name = agent.name or agent.id
        messages, summary, start = _Conversation(agent, name, self._now, self.skipped).read()
        self._skip_agent_parts(agent, name)
        return {
            "format": agentfile.FORMAT,
            "version": agentfile.VERSION,
            "agent_key": None,
            "metadata": _metadata(agent, name),
            "summary": summary,
            "context_start_index": start,
            "blocks": self._agent_blocks(agent, name),
            "messages": messages,
            "archival": [],
        }

    def _agent_blocks(self, agent: _Agent, name: str) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for block_id in agent.block_ids or []:
            block = self._blocks.get(block_id)
            if block is None:
                self.skipped.append(f"agent {name}: block {block_id} is not in the file")
            else:
                out.setdefault(block.label, _block(block, self._shared.get(block_id)))
        for block in agent.memory_blocks or []:
            out.setdefault(block.label, _block(block, None))
        return list(out.values())

    def _skip_agent_parts(self, agent: _Agent, name: str) -> None:
        if agent.tool_rules:
            self.skipped.append(
                f"agent {name}: {len(agent.tool_rules)} tool rule(s) (botmem has no tool rules)"
            )
        if agent.tool_exec_environment_variables or agent.secrets:
            self.skipped.append(
                f"agent {name}: tool environment variables and secrets (not imported)"
            )
        if agent.llm_config and agent.llm_config.get("handle"):
            self.skipped.append(
                f"agent {name}: model {agent.llm_config['handle']} (a Letta model handle); "
                "the agent uses this server's model unless `model` is given"
            )

    def _skip_tools(self) -> None:
        used = dict.fromkeys(i for a in self._file.agents for i in a.tool_ids or [])
        for tool_id in used:
            tool = self._tools.get(tool_id)
            if tool is not None and tool.name not in self._known:
                kind = f" ({tool.tool_type})" if tool.tool_type else ""
                self.skipped.append(f"tool {tool.name}{kind}: botmem has no tool of that name")

    def _skip_file_level(self) -> None:
        for group in self._file.groups or []:
            manager = (group.manager_config or {}).get("manager_type") or "group"
            members = ", ".join(group.agent_ids or [])
            self.skipped.append(
                f"group {group.id or '?'} ({manager} of {members}): botmem has no "
                "multi-agent groups; its agents were imported on their own"
            )
        for what, items in (
            ("file", self._file.files),
            ("source (folder)", self._file.sources),
            ("skill", self._file.skills),
        ):
            if items:
                self.skipped.append(f"{len(items)} {what}(s): botmem has none")
        for server in self._file.mcp_servers or []:
            self.skipped.append(
                f"MCP server {server.server_name or '?'}: botmem has no MCP servers"
            )


class _Conversation:
    """One agent's Letta messages as botmem messages, its summary and context start."""

    def __init__(self, agent: _Agent, name: str, now: datetime, skipped: list[str]):
        self._agent = agent
        self._name = name
        self._when = now
        self._skipped = skipped
        self._call_names: dict[str, str] = {}
        self._summary = ""

    def read(self) -> tuple[list[dict[str, Any]], str, int]:
        in_context = set(self._agent.in_context_message_ids or [])
        out: list[dict[str, Any]] = []
        start: int | None = None
        dropped: Counter[str] = Counter()
        for message in self._agent.messages or []:
            converted = self._convert(message, message.id in in_context)
            if converted is None:
                dropped[message.role] += 1
                continue
            if start is None and message.id in in_context:
                start = len(out)
            out += converted
        for role, n in dropped.items():
            if role != "system":  # the compiled system prompt: botmem compiles its own
                self._skipped.append(f"agent {self._name}: {n} message(s) of role {role}")
        if not in_context:
            start = 0
        return out, self._summary, len(out) if start is None else start

    def _convert(self, message: _Message, in_context: bool) -> list[dict[str, Any]] | None:
        self._when = message.created_at or self._when
        text = _text(message.content)
        if message.role == "user":
            summary = _summary(text) if in_context else None
            if summary is not None:
                self._summary = summary
                return []
            return [self._message("user", text)]
        if message.role == "assistant":
            calls = [_call(c) for c in message.tool_calls or []]
            self._call_names.update((c.id, c.name) for c in calls)
            return [self._message("assistant", text or None, calls)]
        if message.role == "tool":
            return self._tool_results(message, text) or None
        return None

    def _tool_results(self, message: _Message, text: str) -> list[dict[str, Any]]:
        returns = [r for r in message.tool_returns or [] if r.tool_call_id is not None]
        if not returns and message.tool_call_id:
            returns = [_ToolReturn(tool_call_id=message.tool_call_id, func_response=text)]
        out = []
        for result in returns:
            call_id = str(result.tool_call_id)
            content = result.func_response if result.func_response is not None else text
            out.append(self._message("tool", content, call_id=call_id))
        return out

    def _message(
        self,
        role: Role,
        content: str | None,
        calls: list[ToolCall] | None = None,
        call_id: str | None = None,
    ) -> dict[str, Any]:
        when = self._when if self._when.tzinfo else self._when.replace(tzinfo=UTC)
        name = self._call_names.get(call_id) if call_id else None
        message = Message(
            "", role, content, when, tool_calls=tuple(calls or ()), tool_call_id=call_id, name=name
        )
        return {
            "role": role,
            "content": content,
            "created_at": when.isoformat(),
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls or []
            ],
            "tool_call_id": call_id,
            "name": name,
            "tokens": count_tokens([message.to_openai()]),
        }


def _metadata(agent: _Agent, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "system": agent.system or None,
        "description": agent.description,
        "tags": agent.tags or None,
        "user_metadata": agent.metadata or None,
    }


def _block(block: _Block, shared_name: str | None) -> dict[str, Any]:
    limit = block.limit or DEFAULT_LIMIT
    return {
        "label": block.label,
        "value": block.value,
        "limit": max(limit, len(block.value)),
        "description": block.description or "",
        "read_only": bool(block.read_only),
        "shared_name": shared_name,
    }


def _text(content: str | list[dict[str, Any]] | None) -> str:
    """The text parts of a message (reasoning, images and tool parts are left out)."""
    if isinstance(content, str):
        return content
    parts = [p.get("text") for p in content or [] if p.get("type", "text") == "text"]
    return "\n".join(p for p in parts if isinstance(p, str))


def _summary(text: str) -> str | None:
    """The summary a Letta system alert carries, if `text` is one."""
    try:
        alert = json.loads(text)
    except ValueError:
        return None
    if not isinstance(alert, dict) or alert.get("type") != "system_alert":
        return None
    message = str(alert.get("message") or "")
    if "summary" not in message.lower():
        return None
    _, marker, rest = message.partition("messages:\n")
    return (rest if marker else message).strip()


def _call(call: _ToolCall) -> ToolCall:
    arguments = call.function.arguments
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(call.id, call.function.name, text)


def _first_errors(exc: ValidationError, shown: int = 3) -> str:
    errors = exc.errors()
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or 'the file'}: {e['msg']}" for e in errors[:shown]
    ]
    more = f" (and {len(errors) - shown} more)" if len(errors) > shown else ""
    return "; ".join(parts) + more
