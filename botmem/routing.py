"""Who an inbound message is for: pure functions from a platform event to an agent key.

Keys are platform-prefixed. With scope ``user`` (the default) a person has one agent across
the DMs and channels of a platform; the other scopes give a channel, a person within a channel,
or a thread its own agent. Only addressed group messages are answered.
"""

from __future__ import annotations

from typing import Literal, get_args

from botmem.events import InboundMessage
from botmem.types import AgentKey

Scope = Literal["user", "channel", "user_in_channel", "thread"]
SCOPES: tuple[str, ...] = get_args(Scope)
TEAM_LABEL = "team"


def resolve_key(inbound: InboundMessage, scope: Scope) -> AgentKey:
    """The agent that answers `inbound` under `scope`; a DM is always the person's own agent."""
    source, user, channel = inbound.source, inbound.user_id, inbound.channel_id
    if scope == "user" or inbound.is_direct or not channel:
        return f"{source}:{user}"
    if scope == "channel":
        return f"{source}:channel:{channel}"
    if scope == "user_in_channel":
        return f"{source}:channel:{channel}:user:{user}"
    if inbound.thread_id:
        return f"{source}:channel:{channel}:thread:{inbound.thread_id}"
    return f"{source}:channel:{channel}"


def is_private_agent(agent_key: AgentKey) -> bool:
    """True for an agent of one person (user scope, or user_in_channel), not a whole channel."""
    return ":channel:" not in agent_key or ":user:" in agent_key


def addressed(inbound: InboundMessage) -> bool:
    """The one rule of when the bot answers: in a DM always, in a group when addressed."""
    return inbound.is_direct or inbound.mentions_bot or inbound.kind != "user"


def team_block_name(source: str, team_id: str) -> str:
    """The shared block of one guild / workspace / group, e.g. ``discord:123:team``."""
    return f"{source}:{team_id}:{TEAM_LABEL}"


def platform_user(source: str, user_id: str) -> str:
    """A person's platform-prefixed id, as written in `admins` allow-lists."""
    return f"{source}:{user_id}"
