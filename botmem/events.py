"""Platform-neutral inbound and outbound messages."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from botmem.types import AgentKey

InboundKind = Literal["user", "scheduled", "command"]
"""`command`: an in-chat command (e.g. Telegram ``/memory show``), answered without the LLM."""


@dataclass(frozen=True)
class InboundMessage:
    """One event for one agent. (source, message_id) is unique: duplicates are dropped."""

    source: str
    """Where it came from, e.g. ``telegram`` or ``console``."""
    message_id: str
    agent_key: AgentKey
    text: str
    user_id: str = ""
    """The person's platform id, unique on that platform (Slack: ``T1:U9``)."""
    user_name: str = ""
    channel_id: str = ""
    thread_id: str = ""
    team_id: str = ""
    """The Discord guild, Slack workspace or Telegram group it came from ("" in a DM)."""
    kind: InboundKind = "user"
    is_direct: bool = True
    mentions_bot: bool = False
    """Addressed to the bot in a group: a mention, a reply to it, or a thread it is part of."""
    received_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["received_at"] = self.received_at.isoformat() if self.received_at else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InboundMessage:
        data = dict(data)
        if data.get("received_at"):
            data["received_at"] = datetime.fromisoformat(data["received_at"])
        return cls(**data)


@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes
    mime_type: str = "application/json"


@dataclass(frozen=True)
class OutboundMessage:
    """A reply (or a message the bot starts) addressed the way the inbound came in."""

    source: str
    agent_key: AgentKey
    text: str
    channel_id: str = ""
    thread_id: str = ""
    user_id: str = ""
    reply_to: str = ""
    """The platform message id this answers, if any."""
    inbox_id: int | None = None
    private: bool = False
    """Only for the person (an ephemeral message, or a DM), e.g. a command's answer in a group."""
    attachment: Attachment | None = None

    @classmethod
    def reply(
        cls,
        inbound: InboundMessage,
        text: str,
        inbox_id: int | None,
        *,
        private: bool = False,
        attachment: Attachment | None = None,
    ) -> OutboundMessage:
        return cls(
            inbound.source,
            inbound.agent_key,
            text,
            inbound.channel_id,
            inbound.thread_id,
            inbound.user_id,
            inbound.message_id if inbound.kind != "scheduled" else "",  # nothing to reply to
            inbox_id,
            private,
            attachment,
        )
