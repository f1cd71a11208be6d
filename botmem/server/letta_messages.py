"""botmem's stored messages as Letta's message types (what Letta's client reads).

One stored message can become several Letta messages, all with the stored message's id
(as in Letta): an assistant message's text beside tool calls is its reasoning, then each
call follows. A `send_message` call is the agent speaking (an assistant_message); its
"Message sent." result is left out, like Letta does.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from botmem.agent.loop import SEND_MESSAGE
from botmem.server.ids import numbered_id
from botmem.types import Message, ToolCall

LettaMessage = dict[str, Any]


def message_id(message: Message) -> str:
    if message.id is None:
        raise ValueError("a message must be stored (have an id) to be served")
    return numbered_id("message", message.id)


def letta_messages(
    message: Message,
    *,
    use_assistant_message: bool = True,
    types: Collection[str] | None = None,
) -> list[LettaMessage]:
    """The Letta messages of one stored message (maybe none), only of `types` if given.

    With `use_assistant_message` off, `send_message` calls and results are shown as the
    tool calls they are (Letta's option of the same name)."""
    if message.role == "assistant":
        out = _assistant(message, use_assistant_message)
    elif message.role == "tool":
        out = _tool_return(message, use_assistant_message)
    else:
        kind = "user_message" if message.role == "user" else "system_message"
        out = [_base(message, kind, content=message.content or "")]
    return [m for m in out if types is None or m["message_type"] in types]


def is_error_result(message: Message) -> bool:
    """A tool result that reports a failure (botmem's tool errors start with "Error")."""
    return message.role == "tool" and (message.content or "").startswith("Error")


def _assistant(message: Message, use_assistant_message: bool) -> list[LettaMessage]:
    text = message.content or ""
    if not message.tool_calls:
        return [_base(message, "assistant_message", content=text)]
    out = []
    if text.strip():
        out.append(_base(message, "reasoning_message", reasoning=text, source="non_reasoner_model"))
    for call in message.tool_calls:
        spoken = _sent_text(call) if use_assistant_message else None
        if spoken is not None:
            out.append(_base(message, "assistant_message", content=spoken))
        else:
            wire = {"name": call.name, "arguments": call.arguments, "tool_call_id": call.id}
            out.append(_base(message, "tool_call_message", tool_call=wire, tool_calls=[wire]))
    return out


def _sent_text(call: ToolCall) -> str | None:
    """The message a `send_message` call sends; None for other calls and malformed ones
    (those are shown as the tool call they are, so nothing is hidden)."""
    if call.name != SEND_MESSAGE:
        return None
    try:
        sent = json.loads(call.arguments)["message"]
    except (ValueError, KeyError, TypeError):
        return None
    return sent if isinstance(sent, str) else None


def _tool_return(message: Message, use_assistant_message: bool) -> list[LettaMessage]:
    failed = is_error_result(message)
    if use_assistant_message and message.name == SEND_MESSAGE and not failed:
        return []  # the assistant_message of its call says it all
    status = "error" if failed else "success"
    call_id = message.tool_call_id or ""
    text = message.content or ""
    result = {"status": status, "tool_call_id": call_id, "tool_return": text}
    return [
        _base(
            message,
            "tool_return_message",
            name=message.name,
            tool_returns=[result],
            **result,
        )
    ]


def _base(message: Message, kind: str, **fields: Any) -> LettaMessage:
    return {
        "id": message_id(message),
        "date": message.created_at.isoformat(),
        "message_type": kind,
        **fields,
    }
