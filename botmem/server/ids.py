"""Letta-style ids for botmem's agents, passages and messages, and back.

An agent made over the API has the key ``api:<uuid4>`` and the id ``agent-<uuid4>``, as in
Letta. Any other agent (a chat platform's, e.g. ``telegram:42``) gets an id that encodes its
key (``agent-k`` + base32), so every agent is reachable without a lookup table.
"""

from __future__ import annotations

import base64
import binascii
import uuid

from botmem.errors import NotFoundError
from botmem.types import AgentKey

API_SOURCE = "api"
_AGENT = "agent-"
_ENCODED = "k"


def new_agent_key() -> AgentKey:
    return f"{API_SOURCE}:{uuid.uuid4()}"


def agent_id(agent_key: AgentKey) -> str:
    source, _, rest = agent_key.partition(":")
    if source == API_SOURCE and _is_uuid(rest):
        return _AGENT + rest
    encoded = base64.b32encode(agent_key.encode()).decode().rstrip("=").lower()
    return _AGENT + _ENCODED + encoded


def agent_key(agent_id_: str) -> AgentKey:
    """The key of an agent id; NotFoundError for anything that is not one."""
    rest = agent_id_.removeprefix(_AGENT)
    if rest != agent_id_:
        if _is_uuid(rest):
            return f"{API_SOURCE}:{rest}"
        if rest.startswith(_ENCODED):
            decoded = _decode(rest[1:])
            if decoded is not None:
                return decoded
    raise NotFoundError(f"no agent {agent_id_!r}")


def _decode(text: str) -> str | None:
    padded = text.upper() + "=" * (-len(text) % 8)
    try:
        key = base64.b32decode(padded).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return key if ":" in key else None


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def numbered_id(prefix: str, number: int) -> str:
    """``passage-12``, ``message-40``: botmem's integer row ids, Letta-shaped."""
    return f"{prefix}-{number}"


def number_of(prefix: str, id_: str) -> int:
    """The row id in ``prefix-N``; NotFoundError otherwise."""
    head, _, tail = id_.rpartition("-")
    if head != prefix or not tail.isdigit() or len(tail) > 18:
        raise NotFoundError(f"no {prefix} {id_!r}")
    return int(tail)
