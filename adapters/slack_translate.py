"""Slack payloads -> botmem inbound messages: pure functions, no I/O.

Every message gets the id ``<channel>:<ts>``, whichever event carried it: a channel mention
arrives both as ``app_mention`` and as ``message.channels``, and Slack retries an event it
thinks was lost, so the core's inbox sees one id and keeps the first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass, replace
from typing import Any

from botmem.events import InboundMessage
from botmem.routing import Scope, resolve_key

log = logging.getLogger(__name__)

SOURCE = "slack"
USER_SUBTYPES = frozenset({"file_share", "thread_broadcast"})
"""Message subtypes written by a person; every other subtype (edits, deletions, joins, other
bots' posts) is not something to answer."""
_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")

BotThreads = Container[tuple[str, str]]
"""(channel, thread_ts) of the threads the bot has posted in."""


@dataclass(frozen=True)
class BotIdentity:
    """Who the bot is in its workspace (from ``auth.test``)."""

    user_id: str
    bot_id: str = ""
    team_id: str = ""


def event_to_inbound(
    body: Mapping[str, Any], bot: BotIdentity, scope: Scope, bot_threads: BotThreads
) -> InboundMessage | None:
    """The inbound for an Events API ``message`` or ``app_mention``; None when not for botmem.

    Channel messages not addressed to the bot come back with ``mentions_bot=False``: the
    caller hands only ``addressed`` ones on.
    """
    event = body.get("event") or {}
    if not isinstance(event, Mapping):
        return None
    kind = event.get("type")
    if kind not in ("message", "app_mention") or not _from_a_person(event, bot):
        return None
    channel, ts = event.get("channel") or "", event.get("ts") or ""
    text = event.get("text") or ""
    if not all(isinstance(v, str) for v in (channel, ts, text)) or not (
        channel and ts and text.strip()
    ):
        log.debug("Slack %s event without text ignored (%s)", kind, body.get("event_id"))
        return None
    is_direct = kind == "message" and event.get("channel_type") == "im"
    thread_ts = event.get("thread_ts") or ""
    mentions_bot = not is_direct and (
        kind == "app_mention"
        or f"<@{bot.user_id}" in text
        or _in_bot_thread(event, channel, thread_ts, bot, bot_threads)
    )
    team = body.get("team_id") or event.get("team") or bot.team_id
    person_team = event.get("user_team") or event.get("team") or team
    inbound = InboundMessage(
        source=SOURCE,
        message_id=f"{channel}:{ts}",
        agent_key="",
        text=_clean_text(text, bot.user_id),
        user_id=f"{person_team}:{event['user']}",
        channel_id=channel,
        thread_id=thread_ts if is_direct else thread_ts or ts,
        team_id="" if is_direct else team,
        is_direct=is_direct,
        mentions_bot=mentions_bot,
    )
    if not inbound.text:
        log.debug("Slack message %s held only a mention", inbound.message_id)
        return None
    return replace(inbound, agent_key=resolve_key(inbound, scope))


def _from_a_person(event: Mapping[str, Any], bot: BotIdentity) -> bool:
    """Not an edit, a join or any bot's post (the bot's own included)."""
    subtype = event.get("subtype")
    if subtype is not None and subtype not in USER_SUBTYPES:
        return False
    user = event.get("user")
    return bool(user) and not event.get("bot_id") and user != bot.user_id


def _in_bot_thread(
    event: Mapping[str, Any],
    channel: str,
    thread_ts: str,
    bot: BotIdentity,
    bot_threads: BotThreads,
) -> bool:
    if not thread_ts:
        return False
    return event.get("parent_user_id") == bot.user_id or (channel, thread_ts) in bot_threads


def _clean_text(text: str, bot_user_id: str) -> str:
    """Without the bot's mention, with Slack's escapes undone (``&lt;`` -> ``<``)."""
    mention = re.compile(rf"\s*<@{re.escape(bot_user_id)}(?:\|[^>]*)?>\s*")
    return unescape(mention.sub(" ", text)).strip()


def unescape(text: str) -> str:
    """Slack escapes exactly these three characters in message and command text."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def command_to_inbound(payload: Mapping[str, Any], scope: Scope) -> InboundMessage:
    """The command inbound of a slash command payload (``/memory show <@U2|bob>``).

    Never fails on odd input: the core answers bad arguments with the usage text.
    """
    team = _string(payload.get("team_id"))
    channel = _string(payload.get("channel_id"))
    is_direct = payload.get("channel_name") == "directmessage" or channel.startswith("D")
    inbound = InboundMessage(
        source=SOURCE,
        message_id=f"cmd:{payload.get('trigger_id') or _fallback_id(payload)}",
        agent_key="",
        text=command_arguments(_string(payload.get("text")), team),
        user_id=f"{team}:{_string(payload.get('user_id'))}",
        user_name=_string(payload.get("user_name")),
        channel_id=channel,
        team_id="" if is_direct else team,
        kind="command",
        is_direct=is_direct,
    )
    return replace(inbound, agent_key=resolve_key(inbound, scope))


def command_arguments(text: str, team: str) -> str:
    """The core's command grammar: a user mention becomes the agent id ``slack:T1:U2``."""
    text = _USER_MENTION.sub(lambda m: f"{SOURCE}:{team}:{m.group(1)}", text)
    return unescape(text).strip() or "help"


def _string(value: Any) -> str:
    """A payload field that should be text ("" when missing or of another type)."""
    return value if isinstance(value, str) else ""


def _fallback_id(payload: Mapping[str, Any]) -> str:
    """Slack always sends a trigger_id; without one, the request itself is the identity."""
    parts = (payload.get(key) or "" for key in ("team_id", "channel_id", "user_id", "text"))
    return "|".join(parts)


def slack_user(user_id: str) -> str:
    """The Slack user id (``U9``) of botmem's person id (``T1:U9``)."""
    return user_id.rpartition(":")[2]
