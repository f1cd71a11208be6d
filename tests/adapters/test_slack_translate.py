"""Slack payloads -> inbound messages, on recorded payloads (tests/adapters/payloads/slack)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.slack_translate import (
    BotIdentity,
    command_arguments,
    command_to_inbound,
    event_to_inbound,
)
from botmem.routing import addressed

PAYLOADS = Path(__file__).parent / "payloads" / "slack"
BOT = BotIdentity(user_id="UBOT", bot_id="BBOT", team_id="T1")
NO_THREADS: set[tuple[str, str]] = set()


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


def test_a_dm_is_direct_and_unescaped() -> None:
    inbound = event_to_inbound(payload("dm_message"), BOT, "user", NO_THREADS)
    assert inbound is not None
    assert inbound.is_direct and addressed(inbound)
    assert inbound.text == "Hi! I'm Ada & I like <tags>"
    assert inbound.message_id == "D9:1700000000.000100"
    assert (inbound.user_id, inbound.agent_key) == ("T1:U9", "slack:T1:U9")
    assert (inbound.channel_id, inbound.thread_id, inbound.team_id) == ("D9", "", "")


def test_a_channel_mention_is_addressed_with_the_mention_stripped() -> None:
    inbound = event_to_inbound(payload("channel_mention"), BOT, "user", NO_THREADS)
    assert inbound is not None
    assert not inbound.is_direct and inbound.mentions_bot
    assert inbound.text == "what is our deploy day?"
    assert inbound.team_id == "T1"
    assert inbound.thread_id == "1700000100.000200"  # the reply starts a thread on it


def test_both_events_of_one_channel_mention_give_the_same_inbound() -> None:
    mention = event_to_inbound(payload("channel_mention"), BOT, "user", NO_THREADS)
    message = event_to_inbound(payload("channel_message_mention"), BOT, "user", NO_THREADS)
    assert mention == message
    assert mention is not None and mention.message_id == "C1:1700000100.000200"


def test_a_channel_message_without_mention_is_not_addressed() -> None:
    inbound = event_to_inbound(payload("channel_message"), BOT, "user", NO_THREADS)
    assert inbound is not None
    assert not addressed(inbound)


def test_a_reply_in_the_bots_thread_is_addressed() -> None:
    body = payload("thread_reply_to_bot")
    inbound = event_to_inbound(body, BOT, "user", NO_THREADS)
    assert inbound is not None and inbound.mentions_bot
    assert inbound.thread_id == "1700000300.000400"
    # a thread started by someone else, but the bot has posted in it
    body["event"]["parent_user_id"] = "U7"
    stranger = event_to_inbound(body, BOT, "user", NO_THREADS)
    assert stranger is not None and not stranger.mentions_bot
    joined = event_to_inbound(body, BOT, "user", {("C1", "1700000300.000400")})
    assert joined is not None and joined.mentions_bot


def test_the_thread_scope_gives_the_thread_its_agent() -> None:
    inbound = event_to_inbound(payload("thread_reply_to_bot"), BOT, "thread", NO_THREADS)
    assert inbound is not None
    assert inbound.agent_key == "slack:channel:C1:thread:1700000300.000400"


@pytest.mark.parametrize("name", ["bot_own_message", "message_changed"])
def test_the_bots_own_messages_and_edits_are_ignored(name: str) -> None:
    assert event_to_inbound(payload(name), BOT, "user", NO_THREADS) is None


def test_another_bots_message_is_ignored() -> None:
    body = payload("channel_message_mention")
    body["event"]["bot_id"] = "BOTHER"
    assert event_to_inbound(body, BOT, "user", NO_THREADS) is None


def test_a_mention_alone_or_an_unknown_event_is_ignored() -> None:
    body = payload("channel_mention")
    body["event"]["text"] = "<@UBOT>"
    assert event_to_inbound(body, BOT, "user", NO_THREADS) is None
    body["event"]["type"] = "reaction_added"
    assert event_to_inbound(body, BOT, "user", NO_THREADS) is None


def test_a_slash_command_with_a_mention_names_the_agent() -> None:
    inbound = command_to_inbound(payload("slash_command"), "user")
    assert inbound.kind == "command" and addressed(inbound)
    assert inbound.text == "show slack:T1:U2"
    assert inbound.message_id == "cmd:1234.5678.abcdef"
    assert (inbound.user_id, inbound.agent_key) == ("T1:U9", "slack:T1:U9")
    assert not inbound.is_direct and inbound.team_id == "T1"


def test_an_empty_slash_command_in_a_dm_asks_for_help() -> None:
    inbound = command_to_inbound(payload("slash_command_dm"), "channel")
    assert inbound.text == "help"
    assert inbound.is_direct and inbound.team_id == ""
    assert inbound.agent_key == "slack:T1:U9"  # a DM is always the person's own agent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("wipe confirm <@U2>", "wipe confirm slack:T1:U2"),
        ("  agents  ", "agents"),
        (
            "team set We ship on &lt;Tuesdays&gt;\nand Thursdays",
            "team set We ship on <Tuesdays>\nand Thursdays",
        ),
        ("show <#C1|general>", "show <#C1|general>"),
    ],
)
def test_command_arguments(text: str, expected: str) -> None:
    assert command_arguments(text, "T1") == expected


def test_odd_command_payloads_never_raise() -> None:
    inbound = command_to_inbound({}, "user")
    assert inbound.text == "help" and inbound.kind == "command"
