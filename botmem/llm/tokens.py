"""Prompt tokens counted as litellm.token_counter counts OpenAI chat messages, without litellm.

The encoding is tiktoken's cl100k_base (litellm's choice for models it does not know), read
from the copy litellm ships: tiktoken itself would download it, and this machine may be
offline. Finding the file costs no import of litellm (4-7 s, ~190 MB).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken

log = logging.getLogger(__name__)

# tiktoken caches a file under the sha1 of its URL; litellm ships its cache with this one.
_CL100K_FILE = "litellm_core_utils/tokenizers/9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
# As tiktoken_ext/openai_public.py defines cl100k_base.
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}

# OpenAI's chat framing, as litellm counts it.
_PER_MESSAGE = 3  # <|start|>{role}\n{content}<|end|>\n
_PER_NAME = 1
_REPLY_PRIMING = 3  # <|start|>assistant<|message|>
_TOOLS_FRAMING = 9
_TOOLS_WITH_SYSTEM = -4

_encoding: tiktoken.Encoding | None = None
_missing = False
_lock = threading.Lock()


def count_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> int:
    """Tokens these messages (and tool schemas) take in the prompt; ~4 chars/token if the
    encoding file cannot be found."""
    encoding = cl100k()
    if encoding is None:
        return estimate_tokens(messages, tools)

    def count(text: str) -> int:
        return len(encoding.encode_ordinary(text))

    total = _REPLY_PRIMING
    for message in messages:
        total += _PER_MESSAGE + sum(_field_tokens(k, v, count) for k, v in message.items())
    if tools:
        total += count(_tool_definitions(tools)) + _TOOLS_FRAMING
        if any(message.get("role") == "system" for message in messages):
            total += _TOOLS_WITH_SYSTEM
    return total


def estimate_tokens(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> int:
    """~4 characters per token plus a few per message for the role framing (cl100k-ish)."""
    chars = len(json.dumps(messages, default=str)) + len(json.dumps(tools or [], default=str))
    return chars // 4 + 3 * len(messages) + 1


def cl100k() -> tiktoken.Encoding | None:
    """The encoding, loaded once (thread-safe: warm() loads it off the event loop)."""
    global _encoding, _missing
    if _encoding is not None or _missing:
        return _encoding
    with _lock:
        if _encoding is None and not _missing:
            path = litellm_data_file(_CL100K_FILE)
            if path is None:
                log.warning("cl100k_base not found in litellm's package; estimating tokens")
                _missing = True
            else:
                _encoding = _load(path)
    return _encoding


def litellm_data_file(relative: str) -> Path | None:
    """A data file litellm ships, found without importing litellm (that takes seconds)."""
    spec = importlib.util.find_spec("litellm")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / relative
        if path.is_file():
            return path
    return None


def _load(path: Path) -> tiktoken.Encoding:
    import tiktoken

    # Parsed here, not by tiktoken.load.load_tiktoken_bpe: that one copies the file into a
    # cache folder (litellm's own package folder once litellm has set TIKTOKEN_CACHE_DIR).
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in path.read_bytes().splitlines() if line)
    }
    return tiktoken.Encoding(
        name="cl100k_base",
        pat_str=_CL100K_PATTERN,
        mergeable_ranks=ranks,
        special_tokens=_CL100K_SPECIAL,
    )


def _field_tokens(key: str, value: Any, count: Callable[[str], int]) -> int:
    """One message field, as litellm counts it: strings, text parts and tool call arguments
    (names of called tools are in the tool definitions)."""
    if isinstance(value, str):
        return count(value) + (_PER_NAME if key == "name" else 0)
    if key == "tool_calls" and isinstance(value, list):
        return sum(count(str(_arguments(call))) for call in value)
    if key == "content" and isinstance(value, list):
        return sum(count(str(part.get("text", ""))) for part in value if _is_text(part))
    return 0  # None, and what a chat prompt does not carry (images are not sent)


def _arguments(call: Any) -> Any:
    function = call.get("function") if isinstance(call, dict) else None
    return function.get("arguments", "") if isinstance(function, dict) else ""


def _is_text(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") == "text"


# The tools as OpenAI renders them to the model (TypeScript-like), as litellm counts them:
# their JSON would count ~70% more tokens than the model sees.


def _tool_definitions(tools: list[dict[str, Any]]) -> str:
    lines = ["namespace functions {", ""]
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and function.get("name"):
            lines += _function_lines(function)
    lines.append("} // namespace functions")
    return "\n".join(lines)


def _function_lines(function: dict[str, Any]) -> list[str]:
    description = function.get("description")
    lines = [f"// {description}"] if description else []
    name = function["name"]
    parameters = function.get("parameters")
    if isinstance(parameters, dict) and parameters.get("properties"):
        return [*lines, f"type {name} = (_: {{", _properties(parameters, 0), "}) => any;", ""]
    return [*lines, f"type {name} = () => any;", ""]


def _properties(schema: dict[str, Any], indent: int) -> str:
    required = schema.get("required") or []
    lines = []
    for key, prop in (schema.get("properties") or {}).items():
        if prop.get("description"):
            lines.append(f"// {prop['description']}")
        optional = "" if key in required else "?"
        lines.append(f"{key}{optional}: {_type(prop, indent)},")
    return "\n".join(" " * indent + line for line in lines)


def _type(prop: dict[str, Any], indent: int) -> str:
    kind = prop.get("type")
    if kind in ("string", "integer", "number") and "enum" in prop:
        return " | ".join(f'"{item}"' for item in prop["enum"])
    if kind == "array":
        return _type(prop.get("items") or {}, indent) + "[]"
    if kind == "object":
        return "{\n" + _properties(prop, indent + 2) + "\n}"
    return _SIMPLE_TYPES.get(str(kind), "any")


_SIMPLE_TYPES = {
    "string": "string",
    "integer": "number",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
}
