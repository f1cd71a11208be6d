"""`@tool`: typed async functions become tools; the JSON schema comes from hints + docstring.

A tool's first parameter is the `ToolContext` (not shown to the model). The docstring is a
prompt: its first paragraph describes the tool and its ``Args:`` section each parameter.
A tool raises `ToolError` for mistakes the model can correct; the message goes back to it.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from botmem.agent.retrieval import Retriever
from botmem.errors import ToolError
from botmem.events import InboundMessage
from botmem.stores.base import Stores
from botmem.stores.jobs import Job
from botmem.unicode import scrub_json

ToolFn = Callable[..., Awaitable[str]]
MAX_INTEGER = 2**31 - 1
"""Integer arguments (pages, ids) beyond this are refused: no database takes every integer."""
_SIMPLE_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    fn: ToolFn
    ends_turn: bool = False
    """True for `send_message`: its call is the agent's reply."""

    def schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def parse_arguments(self, raw: str) -> dict[str, Any]:
        """Decode and check the model's JSON arguments; ToolError explains what is wrong."""
        try:
            args = json.loads(raw or "{}")
        except json.JSONDecodeError as exc:
            raise ToolError(
                f"arguments are not valid JSON ({exc.msg}); send a JSON object"
            ) from None
        if not isinstance(args, dict):
            raise ToolError("arguments must be a JSON object")
        args = scrub_json(args)
        props = self.parameters["properties"]
        unknown = sorted(set(args) - set(props))
        if unknown:
            raise ToolError(
                f"unknown argument(s) {', '.join(unknown)}; expected {', '.join(props)}"
            )
        required = self.parameters["required"]
        missing = [name for name in required if args.get(name) is None]
        if missing:
            raise ToolError(f"missing required argument(s): {', '.join(missing)}")
        # An optional argument sent as null means "not given": the tool's default applies.
        args = {name: value for name, value in args.items() if value is not None}
        for name, value in args.items():
            _check_type(name, value, props[name])
        return args

    async def call(self, ctx: Any, raw_arguments: str) -> str:
        return await self.fn(ctx, **self.parse_arguments(raw_arguments))


def tool(fn: ToolFn | None = None, *, name: str | None = None, ends_turn: bool = False) -> Any:
    """Decorator: ``@tool`` or ``@tool(name=..., ends_turn=...)``."""

    def wrap(func: ToolFn) -> Tool:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"tool {func.__name__} must be an async function")
        description, arg_docs = _parse_docstring(inspect.getdoc(func) or "")
        return Tool(
            name=name or func.__name__,
            description=description,
            parameters=_parameters_schema(func, arg_docs),
            fn=func,
            ends_turn=ends_turn,
        )

    return wrap(fn) if fn is not None else wrap


class Toolset:
    """The tools one agent may call, by name."""

    def __init__(self, tools: Iterable[Tool]):
        self._tools: dict[str, Tool] = {}
        for item in tools:
            if item.name in self._tools:
                raise ValueError(f"two tools are named {item.name!r}")
            self._tools[item.name] = item

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def schemas(self) -> list[dict[str, Any]]:
        return [t.schema() for t in self._tools.values()]


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its description and per-argument text."""
    parts = re.split(r"^\s*(Args|Arguments|Returns|Raises):\s*$", doc, flags=re.MULTILINE)
    description = parts[0].strip()
    arg_docs: dict[str, str] = {}
    for header, body in zip(parts[1::2], parts[2::2], strict=False):
        if header not in ("Args", "Arguments"):
            continue
        current = None
        for line in body.splitlines():
            match = re.match(r"^\s*(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$", line)
            if match:
                current = match.group(1)
                arg_docs[current] = match.group(3).strip()
            elif current and line.strip():
                arg_docs[current] += " " + line.strip()
    return description, arg_docs


def _parameters_schema(func: ToolFn, arg_docs: dict[str, str]) -> dict[str, Any]:
    hints = typing.get_type_hints(func)
    params = list(inspect.signature(func).parameters.values())[1:]  # skip the ToolContext
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in params:
        if param.name not in hints:
            raise TypeError(f"tool {func.__name__}: parameter {param.name} needs a type hint")
        schema, optional = _type_schema(hints[param.name])
        if param.name in arg_docs:
            schema["description"] = arg_docs[param.name]
        properties[param.name] = schema
        if param.default is inspect.Parameter.empty and not optional:
            required.append(param.name)
    return {"type": "object", "properties": properties, "required": required}


def _type_schema(hint: Any) -> tuple[dict[str, Any], bool]:
    """JSON schema for a type hint, and whether None is allowed."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _type_schema(args[0])[0], True
    if origin is typing.Literal:
        values = list(typing.get_args(hint))
        return {"type": _SIMPLE_TYPES[type(values[0])], "enum": values}, False
    if origin is list:
        (item,) = typing.get_args(hint) or (str,)
        return {"type": "array", "items": _type_schema(item)[0]}, False
    if hint in _SIMPLE_TYPES:
        return {"type": _SIMPLE_TYPES[hint]}, False
    raise TypeError(f"unsupported tool parameter type {hint!r}")


def _check_type(name: str, value: Any, schema: dict[str, Any]) -> None:
    expected = schema.get("type")
    checks: dict[str, Callable[[Any], bool]] = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
    }
    if expected not in checks:
        return
    if not checks[expected](value):
        raise ToolError(f"argument {name} must be a {expected}, got {json.dumps(value)[:60]}")
    if expected == "integer" and abs(value) > MAX_INTEGER:
        raise ToolError(f"argument {name} must be between {-MAX_INTEGER:,} and {MAX_INTEGER:,}")
    if expected == "array":
        for index, item in enumerate(value):
            if item is None:
                raise ToolError(f"argument {name}[{index}] must not be null")
            _check_type(f"{name}[{index}]", item, schema.get("items", {}))
    if "enum" in schema and value not in schema["enum"]:
        raise ToolError(f"argument {name} must be one of {schema['enum']}")


class CheckinPlanner(Protocol):
    """The scheduler as check-in tools and commands see it; errors are ToolErrors."""

    async def plan_checkin(
        self, agent_key: str, when: str, note: str, tz: ZoneInfo, conversation: dict[str, Any]
    ) -> Job: ...

    async def checkins(self, agent_key: str | None) -> list[Job]:
        """Active check-ins of one agent (None: of every agent)."""
        ...

    async def cancel_checkin(self, agent_key: str | None, job_id: int) -> bool:
        """Cancel one of the agent's check-ins (None: any agent's); False if none such."""
        ...


@dataclass(frozen=True)
class ToolContext:
    """What a tool may use. `call_key` is unique per tool call and stable across a replay."""

    agent_key: str
    stores: Stores
    retriever: Retriever
    now: datetime
    timezone: ZoneInfo
    call_key: str
    search_page_size: int = 5
    turn_start_id: int | None = None
    """Id of the current turn's first message: searches look at what came before it."""
    inbound: InboundMessage | None = None
    """The event being answered: where a check-in scheduled now will speak."""
    memory_pressure: Callable[[str], None] | None = None
    """Tell the scheduler a block is (nearly) full, with the reason: it plans a consolidation."""
    planner: CheckinPlanner | None = None
    """Where check-ins are planned (None: no scheduler, e.g. in the CLI)."""
