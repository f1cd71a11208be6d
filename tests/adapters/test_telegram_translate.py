"""Pure translation of recorded Telegram updates into botmem inbound messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from telegram import Update

from adapters.telegram_translate import BotIdentity, to_inbound
from botmem.events import InboundMessage
from botmem.routing import Scope, addressed
from tests.adapters.fake_telegram import message_update, user

PAYLOADS = Path(__file__).parent / "payloads" / "telegram"
BOT = BotIdentity(999, "botmem_bot")


def translate(name: str, scope: Scope = "user") -> InboundMessage | None:
    data = json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))
    return to_inbound(Update.de_json(data, None), BOT, scope)


def inbound(name: str, scope: Scope = "user") -> InboundMessage:
    result = translate(name, scope)
    assert result is not None, f"{name} was ignored"
    return result


def test_direct_message() -> None:
    dm = inbound("dm")
    assert dm.source == "telegram"
    assert dm.message_id == "1:11"
    assert dm.agent_key == "telegram:1"
    assert dm.text == "Hi! Do you remember my cat's name?"
    assert (dm.user_id, dm.user_name) == ("1", "Ann Smith")
    assert (dm.channel_id, dm.team_id, dm.thread_id) == ("1", "", "")
    assert dm.is_direct and dm.kind == "user" and addressed(dm)


def test_start_is_a_greeting() -> None:
    start = inbound("dm_start")
    assert (start.kind, start.text) == ("user", "Hello!")


def test_group_mention_is_cut_out_with_utf16_offsets() -> None:
    group = inbound("group_mention")
    assert group.text == "🚀, when do we ship?"
    assert group.mentions_bot and not group.is_direct and addressed(group)
    assert (group.channel_id, group.team_id) == ("-100500", "-100500")
    assert group.message_id == "-100500:21"
    assert group.agent_key == "telegram:1"


def test_group_message_without_mention_is_not_addressed() -> None:
    group = inbound("group_no_mention")
    assert not group.mentions_bot and not addressed(group)
    assert group.text == "Lunch at noon? @ann_s"  # someone else's mention stays
    assert group.user_name == "Bob"


def test_reply_to_the_bot_addresses_it() -> None:
    reply = inbound("group_reply_to_bot")
    assert reply.mentions_bot and addressed(reply)
    assert reply.text == "And the release notes?"


@pytest.mark.parametrize("name", ["bot_own_message", "other_bot_message"])
def test_bots_are_ignored(name: str) -> None:
    assert translate(name) is None


@pytest.mark.parametrize("name", ["edited_message", "sticker", "other_bot_command"])
def test_nothing_to_answer(name: str) -> None:
    assert translate(name) is None


def test_memory_command_with_args_for_this_bot() -> None:
    command = inbound("command_with_args")
    assert (command.kind, command.text) == ("command", "show telegram:42")
    assert command.agent_key == "telegram:1"  # the speaker's own agent
    assert addressed(command)


def test_command_replying_to_someone_targets_them() -> None:
    command = inbound("command_reply_target")
    assert command.text == "wipe confirm telegram:2"
    per_channel = inbound("command_reply_target", "user_in_channel")
    assert per_channel.text == "wipe confirm telegram:channel:-100500:user:2"
    assert inbound("command_reply_target", "channel").text == "wipe confirm"


def test_command_naming_a_user_by_text_mention() -> None:
    assert inbound("command_text_mention").text == "export telegram:2"


def test_forum_topic_is_the_thread() -> None:
    topic = inbound("forum_topic_mention")
    assert (topic.thread_id, topic.text, topic.mentions_bot) == ("7", "status?", True)
    assert inbound("forum_topic_mention", "thread").agent_key == (
        "telegram:channel:-100600:thread:7"
    )


def test_other_commands_are_text() -> None:
    group = inbound("group_unknown_command")
    assert (group.kind, group.text, group.mentions_bot) == ("user", "/weather Berlin", True)
    dm = inbound("dm_unknown_command")
    assert (dm.kind, dm.text) == ("user", "/weather Berlin")


def test_caption_is_the_text() -> None:
    photo = inbound("photo_caption_mention")
    assert (photo.text, photo.mentions_bot) == ("what is this?", True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/memory", "help"),
        ("/memory show", "show"),
        ("/memory show telegram:5", "show telegram:5"),
        ("/memory wipe confirm 5", "wipe confirm telegram:5"),
        ("/memory agents tele", "agents tele"),
        ("/memory team append We ship on Fridays", "team append We ship on Fridays"),
        ("/memory show @ann_s", "show @ann_s"),  # a username is no id: the core says so
    ],
)
def test_memory_arguments(text: str, expected: str) -> None:
    update = message_update(1, user(1, "Ann"), text)
    result = to_inbound(Update.de_json({"update_id": 1, **update}, None), BOT, "user")
    assert result is not None
    assert (result.kind, result.text) == ("command", expected)


def test_mention_in_the_middle_leaves_clean_text() -> None:
    update = message_update(-100500, user(1, "Ann"), "hey @botmem_bot what's new")
    result = to_inbound(Update.de_json({"update_id": 1, **update}, None), BOT, "user")
    assert result is not None and result.text == "hey what's new"


def test_bare_mention_keeps_the_ping() -> None:
    update = message_update(-100500, user(1, "Ann"), "@BotMem_Bot")
    result = to_inbound(Update.de_json({"update_id": 1, **update}, None), BOT, "user")
    assert result is not None and result.mentions_bot and result.text == "@BotMem_Bot"


def test_a_topic_opening_is_no_reply() -> None:
    """In a forum topic Telegram sets reply_to_message to the topic's opening message."""
    command = inbound("forum_topic_command")
    assert (command.text, command.thread_id) == ("show", "7")  # not Bob, who opened the topic
