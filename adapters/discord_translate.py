"""Discord events -> botmem inbounds: pure functions of discord.py objects, no I/O.

Ids become strings; a thread is addressed by its own id (sending to a thread is sending to its
id), so `channel_id` and `thread_id` are both the thread's id there.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace

import discord

from botmem.events import InboundMessage
from botmem.platform_config import DiscordSettings
from botmem.routing import resolve_key

log = logging.getLogger(__name__)
SOURCE = "discord"
INTERACTION_PREFIX = "interaction:"
_TEXT_TYPES = (discord.MessageType.default, discord.MessageType.reply)


def message_to_inbound(
    message: discord.Message, bot_id: int, settings: DiscordSettings
) -> InboundMessage | None:
    """The inbound of a gateway message, or None when it is not for the bot to read.

    Group messages that do not address the bot are returned too (mentions_bot=False): whether
    to answer is the caller's decision (`botmem.routing.addressed`).
    """
    author = message.author
    if author.bot or author.id == bot_id:
        return None
    if message.type not in _TEXT_TYPES:
        log.debug("discord message %s of type %s ignored", message.id, message.type)
        return None
    text = readable_text(message, bot_id)
    if not text:
        log.debug("discord message %s has no text (attachments only?); ignored", message.id)
        return None
    guild, channel = message.guild, message.channel
    inbound = InboundMessage(
        source=SOURCE,
        message_id=str(message.id),
        agent_key="",
        text=text,
        user_id=str(author.id),
        user_name=author.display_name,
        channel_id=str(channel.id),
        thread_id=str(channel.id) if isinstance(channel, discord.Thread) else "",
        team_id=str(guild.id) if guild is not None else "",
        is_direct=guild is None,
        mentions_bot=guild is not None and addresses_bot(message, bot_id),
        received_at=message.created_at,
        extra=_admin_extra(author, settings),
    )
    return replace(inbound, agent_key=resolve_key(inbound, settings.scope))


def addresses_bot(message: discord.Message, bot_id: int) -> bool:
    """A mention of the bot, a reply to one of its messages, or a thread it is part of."""
    if any(user.id == bot_id for user in message.mentions):
        return True
    replied_to = message.reference.resolved if message.reference is not None else None
    if isinstance(replied_to, discord.Message) and replied_to.author.id == bot_id:
        return True
    channel = message.channel
    return isinstance(channel, discord.Thread) and (
        channel.owner_id == bot_id or channel.me is not None
    )


def readable_text(message: discord.Message, bot_id: int) -> str:
    """The content without the bot's mention; other people's mentions as @display name."""
    text = re.sub(rf"[ \t]*<@!?{bot_id}>[ \t]*", " ", message.content)
    for user in message.mentions:
        if user.id != bot_id:
            text = re.sub(rf"<@!?{user.id}>", f"@{user.display_name}", text)
    return text.strip()


def command_text(
    verb: str,
    *,
    user_id: int | None = None,
    confirm: bool = False,
    action: str | None = None,
    text: str | None = None,
) -> str:
    """A /memory subcommand and its options in the core's grammar (botmem.commands)."""
    words = [verb]
    if confirm:
        words.append("confirm")
    if action in ("set", "append"):
        words.append(action)
    if user_id is not None:
        words.append(f"{SOURCE}:{user_id}")
    if text and (verb != "team" or action in ("set", "append")):
        words.append(" ".join(text.split()) if verb == "agents" else text.strip())
    return " ".join(words)


def schedule_command_text(
    verb: str,
    *,
    action: str = "list",
    checkin_id: int | None = None,
    run_id: str = "",
    user_id: int | None = None,
) -> str:
    """/memory checkins, history and undo in the core's grammar (``undo RUN discord:42``)."""
    words = [verb]
    if verb == "checkins" and action in ("cancel", "all"):
        words.append(action)
        if action == "cancel" and checkin_id is not None:
            words.append(str(checkin_id))
    if run_id.strip():
        words.append(run_id.strip())
    if user_id is not None:
        words.append(f"{SOURCE}:{user_id}")
    return " ".join(words)


def interaction_to_inbound(
    interaction: discord.Interaction, text: str, settings: DiscordSettings
) -> InboundMessage:
    """The command inbound of a /memory interaction; its agent is the speaker's own."""
    user, channel = interaction.user, interaction.channel
    in_guild = interaction.guild_id is not None
    channel_id = str(interaction.channel_id or "")
    admin = settings.platform_admins and in_guild and interaction.permissions.manage_guild
    inbound = InboundMessage(
        source=SOURCE,
        message_id=f"{INTERACTION_PREFIX}{interaction.id}",
        agent_key="",
        text=text,
        user_id=str(user.id),
        user_name=user.display_name,
        channel_id=channel_id,
        thread_id=channel_id if isinstance(channel, discord.Thread) else "",
        team_id=str(interaction.guild_id) if in_guild else "",
        kind="command",
        is_direct=not in_guild,
        received_at=interaction.created_at,
        extra={"platform_admin": admin} if settings.platform_admins else {},
    )
    return replace(inbound, agent_key=resolve_key(inbound, settings.scope))


def _admin_extra(
    author: discord.User | discord.Member, settings: DiscordSettings
) -> dict[str, bool]:
    """Manage Server counts as botmem admin only when the settings say so."""
    if not settings.platform_admins:
        return {}
    is_admin = isinstance(author, discord.Member) and author.guild_permissions.manage_guild
    return {"platform_admin": is_admin}
