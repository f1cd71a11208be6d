"""What a command answers (shared by the command modules and the router)."""

from __future__ import annotations

from dataclasses import dataclass

from botmem.events import Attachment

REFUSED = "Sorry, only the bot's admins can do that."


@dataclass(frozen=True)
class CommandReply:
    text: str
    attachment: Attachment | None = None
