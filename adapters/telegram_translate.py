"""Telegram updates -> botmem inbound messages: pure functions, no I/O.

Entity offsets in Telegram count UTF-16 code units, so text is cut and spliced in UTF-16.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from telegram import Message, MessageEntity, Update, User

from botmem.events import InboundMessage
from botmem.routing import Scope, resolve_key

log = logging.getLogger(__name__)

SOURCE = "telegram"
GROUP_CHATS = ("group", "supergroup")
AGENT_VERBS = ("show", "export", "wipe", "history")
"""Memory commands that take an optional AGENT argument."""
PUNCTUATION = ",.;:!?"
GREETING = "Hello!"
"""What `/start` means: the person opened the chat with the bot."""


@dataclass(frozen=True)
class BotIdentity:
    id: int
    username: str
    """Without the leading @."""

    def is_named(self, username: str) -> bool:
        return username.lstrip("@").lower() == self.username.lower()


@dataclass(frozen=True)
class Command:
    """A leading bot command: ``/memory@botmem_bot show`` -> name ``memory``, for ``botmem_bot``."""

    entity: MessageEntity
    name: str
    addressee: str
    """The bot named after the @ ("" when none is named)."""


def to_inbound(update: Update, bot: BotIdentity, scope: Scope) -> InboundMessage | None:
    """The inbound for a message update, or None when botmem has nothing to do with it.

    Group messages not addressed to the bot come back with ``mentions_bot=False``: the
    caller hands only ``addressed`` ones on.
    """
    message = update.message
    if message is None:
        if update.edited_message is not None:
            log.debug("edited Telegram message ignored (update %s)", update.update_id)
        return None
    sender = message.from_user
    if sender is None or sender.is_bot:
        return None
    if message.chat.type != "private" and message.chat.type not in GROUP_CHATS:
        return None
    text, entities = _text_and_entities(message)
    if not text.strip():
        log.debug("non-text Telegram message %s ignored", message.message_id)
        return None
    inbound = _base_inbound(message, sender)
    command = _leading_command(text, entities)
    if command is not None and command.addressee and not bot.is_named(command.addressee):
        return None  # another bot's command
    translated: InboundMessage | None
    if command is not None and command.name in ("memory", "help"):
        translated = _memory_command(inbound, message, text, entities, command, scope)
    else:
        translated = _user_message(inbound, message, text, entities, command, bot)
    if translated is None:
        return None
    return replace(translated, agent_key=resolve_key(translated, scope))


def display_name(user: User) -> str:
    full = " ".join(part for part in (user.first_name, user.last_name) if part)
    return full or user.username or str(user.id)


def _base_inbound(message: Message, sender: User) -> InboundMessage:
    chat = message.chat
    is_direct = chat.type == "private"
    topic = message.message_thread_id if message.is_topic_message else None
    return InboundMessage(
        source=SOURCE,
        message_id=f"{chat.id}:{message.message_id}",
        agent_key="",
        text="",
        user_id=str(sender.id),
        user_name=display_name(sender),
        channel_id=str(chat.id),
        thread_id=str(topic) if topic else "",
        team_id="" if is_direct else str(chat.id),
        is_direct=is_direct,
    )


def _text_and_entities(message: Message) -> tuple[str, Sequence[MessageEntity]]:
    if message.text is not None:
        return message.text, message.entities
    if message.caption is not None:  # a photo or file with a caption: the caption is the text
        return message.caption, message.caption_entities
    return "", ()


def _leading_command(text: str, entities: Sequence[MessageEntity]) -> Command | None:
    for entity in entities:
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            name, _, addressee = _entity_text(text, entity)[1:].partition("@")
            return Command(entity, name.lower(), addressee)
    return None


def _user_message(
    inbound: InboundMessage,
    message: Message,
    text: str,
    entities: Sequence[MessageEntity],
    command: Command | None,
    bot: BotIdentity,
) -> InboundMessage | None:
    """A message for the agent: the bot's mentions cut out, `/start` read as a greeting."""
    mentioned = _replies_to(message, bot.id) or bool(command and command.addressee)
    edits: dict[MessageEntity, str] = {}
    for entity in entities:
        if _names_bot(text, entity, bot):
            edits[entity] = ""
            mentioned = True
    if command is not None:
        if command.name == "start":
            if inbound.is_direct or mentioned:
                return replace(inbound, text=GREETING, mentions_bot=mentioned)
            return None  # a bare /start in a group is for whichever bot the person meant
        edits[command.entity] = f"/{command.name}"
        if not inbound.is_direct and not mentioned:
            return None  # another bot's command: only ours when addressed to us
    cleaned = _tidy(_splice(text, edits))
    return replace(inbound, text=cleaned or text.strip(), mentions_bot=mentioned)


def _memory_command(
    inbound: InboundMessage,
    message: Message,
    text: str,
    entities: Sequence[MessageEntity],
    command: Command,
    scope: Scope,
) -> InboundMessage:
    """``/memory ARGS`` -> a command inbound in the core's grammar (``/help`` -> ``help``)."""
    if command.name == "help":
        return replace(inbound, kind="command", text="help")
    args = _splice(text, {command.entity: ""}).split()
    if args and args[0].lower() in AGENT_VERBS:
        users = {
            e: platform_agent(e.user.id)
            for e in entities
            if e.type == MessageEntity.TEXT_MENTION and e.user is not None
        }
        args = _agent_args(_splice(text, {command.entity: "", **users}).split())
        if len(args) == _agent_arg_index(args):  # no AGENT: the replied-to person, if any
            target = _reply_target(inbound, message, scope)
            args += [target] if target else []
    return replace(inbound, kind="command", text=" ".join(args) or "help")


def platform_agent(user_id: int | str) -> str:
    return f"{SOURCE}:{user_id}"


def _agent_arg_index(args: list[str]) -> int:
    """Where AGENT sits in ``verb [confirm] [AGENT]``."""
    return 2 if args[0].lower() == "wipe" and args[1:2] == ["confirm"] else 1


def _agent_args(args: list[str]) -> list[str]:
    """``show 42`` -> ``show telegram:42``; prefixed ids and anything else are kept."""
    index = _agent_arg_index(args)
    if len(args) > index and args[index].lstrip("-").isdigit():
        args[index] = platform_agent(args[index])
    return args


def _reply_target(inbound: InboundMessage, message: Message, scope: Scope) -> str:
    """The agent of the person whose message a command replies to ("" if none applies)."""
    replied = _replied(message)
    author = replied.from_user if replied is not None else None
    if author is None or author.is_bot or str(author.id) == inbound.user_id:
        return ""
    own = resolve_key(inbound, scope)
    theirs = resolve_key(replace(inbound, user_id=str(author.id)), scope)
    return "" if theirs == own else theirs  # a channel-wide agent is nobody's in particular


def _replied(message: Message) -> Message | None:
    """The message this one answers; not the opening of the forum topic it is posted in."""
    replied = message.reply_to_message
    if replied is None or replied.forum_topic_created is not None:
        return None
    return replied


def _replies_to(message: Message, user_id: int) -> bool:
    replied = _replied(message)
    return bool(replied and replied.from_user and replied.from_user.id == user_id)


def _names_bot(text: str, entity: MessageEntity, bot: BotIdentity) -> bool:
    if entity.type == MessageEntity.MENTION:
        return bot.is_named(_entity_text(text, entity))
    if entity.type == MessageEntity.TEXT_MENTION:
        return entity.user is not None and entity.user.id == bot.id
    return False


def _entity_text(text: str, entity: MessageEntity) -> str:
    units = text.encode("utf-16-le")
    span = units[2 * entity.offset : 2 * (entity.offset + entity.length)]
    return span.decode("utf-16-le", "replace")  # an offset inside a character: not a crash


def _splice(text: str, edits: dict[MessageEntity, str]) -> str:
    """The text with each entity's span replaced by its new text.

    A span cut out entirely takes the spaces around it along, leaving one.
    """
    units = text.encode("utf-16-le")
    out = ""
    pos = 0
    for entity in sorted(edits, key=lambda e: e.offset):
        start, end = 2 * entity.offset, 2 * (entity.offset + entity.length)
        if start < pos:
            continue  # overlapping entities: the first one wins
        out += units[pos:start].decode("utf-16-le", "replace")
        if edits[entity]:
            out += edits[entity]
        else:
            end = _skip_spaces(units, end)
            following = units[end : end + 2].decode("utf-16-le", "replace")
            out = out.rstrip(" ") + ("" if not out or following in PUNCTUATION else " ")
        pos = end
    return out + units[pos:].decode("utf-16-le", "replace")


def _skip_spaces(units: bytes, pos: int) -> int:
    while units[pos : pos + 2] == b" \x00":
        pos += 2
    return pos


def _tidy(text: str) -> str:
    """The text around a cut-out mention: "@bot, hi" -> "hi"."""
    return text.strip().lstrip(",:;").strip()
