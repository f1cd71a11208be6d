"""Pure translation of recorded Discord gateway payloads into botmem inbounds.

The payloads become real discord.py objects through a ConnectionState that has seen READY's
user and the GUILD_CREATE, as on a connected client.
"""

from __future__ import annotations

from typing import Any

import discord
import pytest

from adapters.discord import gateway_intents
from adapters.discord_translate import (
    command_text,
    interaction_to_inbound,
    message_to_inbound,
    schedule_command_text,
)
from botmem.events import InboundMessage
from botmem.platform_config import DiscordSettings
from botmem.routing import addressed
from tests.adapters.fake_discord import (
    ALICE_ID,
    BOB_ID,
    BOT_ID,
    CHANNEL_ID,
    DM_CHANNEL_ID,
    GUILD_ID,
    THREAD_ID,
    payload,
)

DEFAULTS = DiscordSettings()


@pytest.fixture
def state() -> Any:
    client = discord.Client(intents=gateway_intents(DEFAULTS))
    state = client._connection
    state.user = discord.ClientUser(state=state, data=payload("user_me"))  # type: ignore[arg-type]
    state._add_guild_from_data(payload("guild_create"))  # type: ignore[arg-type]
    return state


def message(state: Any, data: dict[str, Any]) -> discord.Message:
    channel, _ = state._get_guild_channel(data)  # what MESSAGE_CREATE parsing does
    return discord.Message(state=state, channel=channel, data=data)  # type: ignore[arg-type]


def inbound(
    state: Any, name: str, settings: DiscordSettings = DEFAULTS, **changes: Any
) -> InboundMessage | None:
    return message_to_inbound(message(state, {**payload(name), **changes}), BOT_ID, settings)


def test_dm_is_direct_and_the_person_s_own_agent(state: Any) -> None:
    got = inbound(state, "message_dm")
    assert got is not None
    assert got.is_direct and addressed(got)
    assert (got.source, got.message_id) == ("discord", "1600000000000000001")
    assert got.agent_key == f"discord:{ALICE_ID}"
    assert (got.user_id, got.user_name) == (str(ALICE_ID), "Alice A.")
    assert (got.channel_id, got.thread_id, got.team_id) == (str(DM_CHANNEL_ID), "", "")
    assert got.text == "Hi, I'm Alice and I love green tea."
    assert got.received_at is not None and got.received_at.tzinfo is not None
    assert got.extra == {}


def test_group_mention_is_stripped_and_other_mentions_are_named(state: Any) -> None:
    got = inbound(state, "message_guild_mention")
    assert got is not None
    assert got.mentions_bot and not got.is_direct and addressed(got)
    assert got.text == "what do you remember about @Bob?"
    assert (got.team_id, got.channel_id, got.thread_id) == (str(GUILD_ID), str(CHANNEL_ID), "")
    assert got.user_name == "Alice"  # the server nickname
    assert got.agent_key == f"discord:{ALICE_ID}"


def test_legacy_nickname_mention_is_stripped_too(state: Any) -> None:
    got = inbound(state, "message_guild_mention", content=f"hey <@!{BOT_ID}>  how are you?")
    assert got is not None
    assert got.text == "hey how are you?"


def test_group_message_without_mention_is_not_addressed(state: Any) -> None:
    got = inbound(state, "message_guild_plain")
    assert got is not None
    assert not got.mentions_bot and not got.is_direct
    assert not addressed(got)


def test_reply_to_the_bot_addresses_it(state: Any) -> None:
    got = inbound(state, "message_reply_to_bot")
    assert got is not None
    assert got.mentions_bot
    assert got.text == "And what else does he like?"


def test_reply_to_someone_else_does_not(state: Any) -> None:
    data = payload("message_reply_to_bot")
    data["referenced_message"] = {**payload("message_guild_plain"), "id": "1600000000000000004"}
    got = message_to_inbound(message(state, data), BOT_ID, DEFAULTS)
    assert got is not None
    assert not got.mentions_bot


def test_the_bot_s_own_and_other_bots_messages_are_ignored(state: Any) -> None:
    assert inbound(state, "message_bot_own") is None
    assert inbound(state, "message_other_bot") is None


def test_empty_and_system_messages_are_ignored(state: Any) -> None:
    assert inbound(state, "message_guild_mention", content=f"<@{BOT_ID}>") is None
    assert inbound(state, "message_guild_plain", type=6, content="") is None  # a pin notice


def test_thread_of_the_bot_addresses_it_and_is_addressed_by_its_id(state: Any) -> None:
    got = inbound(state, "message_thread")
    assert got is not None
    assert got.mentions_bot
    assert got.channel_id == got.thread_id == str(THREAD_ID)
    assert got.team_id == str(GUILD_ID)


def test_thread_without_the_bot_does_not(state: Any) -> None:
    got = inbound(state, "message_other_thread")
    assert got is not None
    assert not got.mentions_bot
    assert got.thread_id == got.channel_id != str(THREAD_ID)


def test_scopes_give_channel_and_thread_agents(state: Any) -> None:
    channel = inbound(state, "message_guild_mention", DiscordSettings(scope="channel"))
    thread = inbound(state, "message_thread", DiscordSettings(scope="thread"))
    dm = inbound(state, "message_dm", DiscordSettings(scope="channel"))
    assert channel is not None and thread is not None and dm is not None
    assert channel.agent_key == f"discord:channel:{CHANNEL_ID}"
    assert thread.agent_key == f"discord:channel:{THREAD_ID}:thread:{THREAD_ID}"
    assert dm.agent_key == f"discord:{ALICE_ID}"


def test_manage_server_counts_as_admin_only_when_configured(state: Any) -> None:
    member = _member(BOB_ID)  # a Mods member: Manage Server
    by_bob = {"author": member.pop("user"), "member": member}
    settings = DiscordSettings(platform_admins=True)
    bob = inbound(state, "message_guild_mention", settings, **by_bob)
    alice = inbound(state, "message_guild_mention", settings)
    unconfigured = inbound(state, "message_guild_mention", **by_bob)
    assert bob is not None and alice is not None and unconfigured is not None
    assert bob.extra == {"platform_admin": True}
    assert alice.extra == {"platform_admin": False}
    assert unconfigured.extra == {}


@pytest.mark.parametrize(
    ("verb", "options", "expected"),
    [
        ("checkins", {}, "checkins"),
        ("checkins", {"checkin_id": 3}, "checkins"),
        ("checkins", {"action": "cancel", "checkin_id": 3}, "checkins cancel 3"),
        ("checkins", {"action": "cancel"}, "checkins cancel"),
        ("checkins", {"action": "all"}, "checkins all"),
        ("history", {}, "history"),
        ("history", {"user_id": 42}, "history discord:42"),
        ("undo", {"run_id": " 20260314T030000-abc123 "}, "undo 20260314T030000-abc123"),
        ("undo", {"run_id": "R1", "user_id": 42}, "undo R1 discord:42"),
    ],
)
def test_schedule_command_text_is_the_core_grammar(
    verb: str, options: dict[str, Any], expected: str
) -> None:
    assert schedule_command_text(verb, **options) == expected


@pytest.mark.parametrize(
    ("verb", "options", "expected"),
    [
        ("help", {}, "help"),
        ("show", {}, "show"),
        ("show", {"user_id": 42}, "show discord:42"),
        ("export", {"user_id": 42}, "export discord:42"),
        ("wipe", {}, "wipe"),
        ("wipe", {"confirm": True}, "wipe confirm"),
        ("wipe", {"confirm": True, "user_id": 42}, "wipe confirm discord:42"),
        ("agents", {}, "agents"),
        ("agents", {"text": " alice  bob "}, "agents alice bob"),
        ("team", {"action": "show", "text": "ignored"}, "team"),
        ("team", {"action": "set", "text": "We ship on Fridays."}, "team set We ship on Fridays."),
        ("team", {"action": "append", "text": "Line\ntwo"}, "team append Line\ntwo"),
        ("team", {"action": "set"}, "team set"),
    ],
)
def test_command_text_is_the_core_grammar(
    verb: str, options: dict[str, Any], expected: str
) -> None:
    assert command_text(verb, **options) == expected


def test_command_in_a_server_is_the_speaker_s_own_agent(state: Any) -> None:
    interaction = discord.Interaction(data=payload("interaction_memory_show"), state=state)  # type: ignore[arg-type]
    got = interaction_to_inbound(interaction, f"show discord:{ALICE_ID}", DEFAULTS)
    assert got.kind == "command" and addressed(got)
    assert got.message_id == "interaction:1700000000000000001"
    assert got.text == f"show discord:{ALICE_ID}"
    assert (got.user_id, got.user_name) == (str(BOB_ID), "Bob")
    assert got.agent_key == f"discord:{BOB_ID}"
    assert not got.is_direct
    assert (got.team_id, got.channel_id, got.thread_id) == (str(GUILD_ID), str(CHANNEL_ID), "")
    assert got.extra == {}
    admin = interaction_to_inbound(interaction, "agents", DiscordSettings(platform_admins=True))
    assert admin.extra == {"platform_admin": True}


def test_command_in_a_dm_is_direct(state: Any) -> None:
    interaction = discord.Interaction(data=payload("interaction_memory_help_dm"), state=state)  # type: ignore[arg-type]
    got = interaction_to_inbound(interaction, "help", DiscordSettings(platform_admins=True))
    assert got.is_direct and got.team_id == ""
    assert got.channel_id == str(DM_CHANNEL_ID)
    assert got.agent_key == f"discord:{ALICE_ID}"
    assert got.extra == {"platform_admin": False}


def test_command_in_a_thread_keeps_the_thread(state: Any) -> None:
    interaction = discord.Interaction(data=payload("interaction_memory_team_set"), state=state)  # type: ignore[arg-type]
    got = interaction_to_inbound(interaction, "team set We ship on Fridays.", DEFAULTS)
    assert got.channel_id == got.thread_id == str(THREAD_ID)
    assert got.user_name == "Alice"
    assert got.agent_key == f"discord:{ALICE_ID}"


def _member(user_id: int) -> dict[str, Any]:
    members = payload("guild_create")["members"]
    member: dict[str, Any] = next(m for m in members if m["user"]["id"] == str(user_id))
    return member
