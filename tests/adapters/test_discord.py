"""The Discord adapter end to end: real discord.py, a fake Discord on 127.0.0.1, a real App."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.discord import DiscordAdapter, DiscordStartError
from botmem.app import App
from botmem.config import load_settings
from botmem.errors import ConfigError
from botmem.events import OutboundMessage
from botmem.testing import ScriptedLLM
from botmem.testing.scripted import reply
from tests.adapters.fake_discord import (
    ALICE_ID,
    BOB_ID,
    BOT_ID,
    CHANNEL_ID,
    DM_CHANNEL_ID,
    EPHEMERAL,
    GUILD_ID,
    OTHER_GUILD_ID,
    THREAD_ID,
    FakeDiscord,
    Request,
    dm_interaction_create,
    guild_create,
    interaction_create,
    message_create,
)
from tests.helpers import make_settings, open_app

PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)  # members, presences, message content


@dataclass
class Bot:
    app: App
    adapter: DiscordAdapter
    llm: ScriptedLLM
    fake: FakeDiscord

    async def say(self, payload_name: str, **changes: Any) -> dict[str, Any]:
        data = message_create(payload_name, **changes)
        await self.fake.dispatch("MESSAGE_CREATE", data)
        return data

    async def reply_in(self, channel_id: int, count: int = 1) -> list[Request]:
        """Wait until `count` messages were delivered to the channel; returns them all."""

        def delivered() -> list[Request]:
            posted = self.fake.posted(channel_id)
            return posted if len(posted) >= count else []

        return await self.fake.wait_for(delivered)

    async def command(self, payload: dict[str, Any]) -> list[Request]:
        """Run a /memory interaction; returns its follow-ups once the first arrived."""
        await self.fake.dispatch("INTERACTION_CREATE", payload)
        return await self.fake.wait_for(lambda: self.fake.followups(payload["token"]))

    def user_texts(self) -> list[str]:
        """What the LLM was told, last user message of each agent step."""
        return [
            next(m["content"] for m in reversed(r.messages) if m["role"] == "user")
            for r in self.llm.tool_requests
        ]


Start = Callable[..., AbstractAsyncContextManager[Bot]]


@pytest.fixture
def fake(discord_fake: FakeDiscord) -> FakeDiscord:
    return discord_fake


@pytest.fixture
def start(fake: FakeDiscord, caplog: pytest.LogCaptureFixture) -> Start:
    """Run an App with the Discord adapter; fails on a dead connection or any logged error."""

    @asynccontextmanager
    async def running(*script: str, **discord_settings: Any) -> AsyncIterator[Bot]:
        settings = make_settings(discord=discord_settings)
        llm = ScriptedLLM([reply(text) for text in script])
        app = await open_app(settings, llm)
        assert settings.discord is not None
        adapter = DiscordAdapter(settings.discord, "fake.token", guild_ready_timeout=0.01)
        await app.start([adapter])
        closed = asyncio.ensure_future(adapter.wait_closed())
        fake.watch(closed)
        try:
            yield Bot(app, adapter, llm, fake)
        finally:
            await app.stop()
            await app.aclose()
            await asyncio.wait_for(closed, 5)  # raises what ended the connection, if anything
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == []

    return running


async def test_dm_gets_a_reply_to_the_message(start: Start) -> None:
    async with start("Hello Alice, noted: green tea.") as bot:
        dm = await bot.say("message_dm")
        (sent,) = await bot.reply_in(DM_CHANNEL_ID)
    assert sent.json["content"] == "Hello Alice, noted: green tea."
    assert str(sent.json["message_reference"]["message_id"]) == dm["id"]
    assert sent.json["message_reference"]["fail_if_not_exists"] is False
    assert bot.user_texts() == ["Hi, I'm Alice and I love green tea."]


async def test_group_message_without_mention_gets_no_reply(start: Start) -> None:
    async with start("only the DM is answered") as bot:
        await bot.say("message_guild_plain")
        await bot.say("message_dm")  # a barrier: events are read in order
        await bot.reply_in(DM_CHANNEL_ID)
    assert bot.fake.posted(CHANNEL_ID) == []
    assert len(bot.llm.tool_requests) == 1
    assert bot.fake.find("POST", f"/channels/{CHANNEL_ID}/typing") == []


async def test_group_mention_gets_a_reply_with_the_mention_stripped(start: Start) -> None:
    async with start("Bob likes chess.") as bot:
        said = await bot.say("message_guild_mention")
        (sent,) = await bot.reply_in(CHANNEL_ID)
    assert sent.json["content"] == "Bob likes chess."
    reference = sent.json["message_reference"]
    assert (str(reference["message_id"]), str(reference["channel_id"])) == (
        said["id"],
        str(CHANNEL_ID),
    )
    assert bot.user_texts() == ["[Alice] what do you remember about @Bob?"]


async def test_thread_of_the_bot_gets_a_reply_in_the_thread(start: Start) -> None:
    async with start("Have a good trip!") as bot:
        await bot.say("message_thread")
        (sent,) = await bot.reply_in(THREAD_ID)
    assert sent.json["content"] == "Have a good trip!"
    assert bot.fake.posted(CHANNEL_ID) == []


async def test_long_reply_is_split_under_the_limit_without_loss(start: Start) -> None:
    words = [f"word{i}" for i in range(575)]
    long_text = "\n\n".join(" ".join(words[i : i + 50]) for i in range(0, 575, 50)) + "."
    assert len(long_text) == 4501
    async with start(long_text) as bot:
        await bot.say("message_dm")
        sent = await bot.reply_in(DM_CHANNEL_ID, count=3)
        await bot.fake.settle()
    pieces = [r.json["content"] for r in bot.fake.posted(DM_CHANNEL_ID)]
    assert len(pieces) == 3
    assert all(len(piece) <= 2000 for piece in pieces)
    assert " ".join(pieces).split() == long_text.split()
    assert "message_reference" in sent[0].json
    assert all("message_reference" not in r.json for r in sent[1:])


async def test_typing_is_shown_while_the_agent_thinks(start: Start) -> None:
    thinking = asyncio.Event()
    async with start() as bot:
        bot.llm.responder = lambda messages: reply("Done thinking.")
        complete = bot.llm.complete

        async def slow_complete(*args: Any, **kwargs: Any) -> Any:
            await thinking.wait()
            return await complete(*args, **kwargs)

        bot.llm.complete = slow_complete  # type: ignore[method-assign]
        await bot.say("message_dm")
        await bot.fake.wait_for(lambda: bot.fake.find("POST", f"/channels/{DM_CHANNEL_ID}/typing"))
        assert bot.fake.posted(DM_CHANNEL_ID) == []
        thinking.set()
        (sent,) = await bot.reply_in(DM_CHANNEL_ID)
    assert sent.json["content"] == "Done thinking."


async def test_duplicate_message_create_gets_one_reply(start: Start) -> None:
    async with start("First answer.", "Barrier answer.") as bot:
        await bot.say("message_dm")
        await bot.say("message_dm")  # the gateway redelivers the same message
        await bot.reply_in(DM_CHANNEL_ID)
        await bot.say("message_dm", id="1600000000000000099", content="Still there?")
        sent = await bot.reply_in(DM_CHANNEL_ID, count=2)
    assert [r.json["content"] for r in sent] == ["First answer.", "Barrier answer."]
    assert len(bot.llm.tool_requests) == 2


async def test_rate_limited_message_is_retried_and_delivered(start: Start) -> None:
    async with start("Delivered after a 429.") as bot:
        bot.fake.rate_limit_messages = 1
        await bot.say("message_dm")
        (sent,) = await bot.reply_in(DM_CHANNEL_ID)
    assert bot.fake.rate_limited == 1
    (refused,) = [r for r in bot.fake.requests if r.status == 429]
    assert refused.json["content"] == sent.json["content"] == "Delivered after a 429."
    assert bot.fake.requests.index(refused) < bot.fake.requests.index(sent)


async def test_slash_commands_are_synced_globally_without_privileged_intents(
    start: Start,
) -> None:
    async with start() as bot:
        (put,) = await bot.fake.wait_for(
            lambda: bot.fake.find("PUT", f"/applications/{BOT_ID}/commands")
        )
    (memory,) = put.json
    assert memory["name"] == "memory"
    subcommands = {option["name"]: option for option in memory["options"]}
    assert set(subcommands) == {
        *("help", "show", "export", "wipe", "agents", "team"),
        *("checkins", "timezone", "history", "undo"),
    }
    assert all(option["type"] == 1 for option in subcommands.values())
    team_action = subcommands["team"]["options"][0]
    assert [c["value"] for c in team_action["choices"]] == ["show", "set", "append"]
    checkins_action = subcommands["checkins"]["options"][0]
    assert [c["value"] for c in checkins_action["choices"]] == ["list", "cancel", "all"]
    assert [o["name"] for o in subcommands["undo"]["options"]] == ["run", "user"]
    assert bot.fake.identify is not None
    assert bot.fake.identify["intents"] & PRIVILEGED_INTENTS == 0


async def test_slash_commands_are_synced_to_the_configured_servers(start: Start) -> None:
    async with start(command_guilds=[GUILD_ID], message_content=True) as bot:
        (put,) = await bot.fake.wait_for(
            lambda: bot.fake.find("PUT", f"/applications/{BOT_ID}/guilds/{GUILD_ID}/commands")
        )
    assert [command["name"] for command in put.json] == ["memory"]
    assert bot.fake.find("PUT", f"/applications/{BOT_ID}/commands") == []
    assert bot.fake.identify is not None
    assert bot.fake.identify["intents"] & (1 << 15)  # message content, as configured


async def test_memory_help_is_deferred_then_followed_up_ephemerally(start: Start) -> None:
    async with start() as bot:
        command = interaction_create("help")
        (followup,) = await bot.command(command)
    (callback,) = bot.fake.find("POST", f"/interactions/{command['id']}/")
    assert callback.json == {"type": 5, "data": {"flags": EPHEMERAL}}
    assert bot.fake.requests.index(callback) < bot.fake.requests.index(followup)
    assert followup.path == f"/webhooks/{BOT_ID}/{command['token']}"
    assert followup.json["flags"] & EPHEMERAL
    assert "Memory commands:" in followup.json["content"]
    assert bot.llm.tool_requests == []


async def test_memory_help_in_a_dm_is_not_ephemeral(start: Start) -> None:
    async with start() as bot:
        command = dm_interaction_create("help")
        (followup,) = await bot.command(command)
    (callback,) = bot.fake.find("POST", f"/interactions/{command['id']}/")
    assert callback.json["type"] == 5
    assert not callback.json.get("data", {}).get("flags", 0) & EPHEMERAL
    assert not followup.json.get("flags", 0) & EPHEMERAL
    assert "Memory commands:" in followup.json["content"]


async def test_memory_show_lists_the_speaker_s_blocks(start: Start) -> None:
    async with start("Nice to meet you.") as bot:
        await bot.say("message_dm")
        await bot.reply_in(DM_CHANNEL_ID)
        (followup,) = await bot.command(interaction_create("show"))
    assert followup.json["content"].startswith(f"Memory of discord:{ALICE_ID}:")
    assert "[persona]" in followup.json["content"]


async def test_memory_timezone_and_checkins(start: Start) -> None:
    zone = [{"name": "zone", "type": 3, "value": "Europe/Paris"}]
    async with start() as bot:
        (changed,) = await bot.command(interaction_create("timezone", zone))
        (listed,) = await bot.command(interaction_create("checkins"))
    assert changed.json["content"] == "Your timezone is now Europe/Paris (it was UTC)."
    assert listed.json["content"] == "No check-ins planned."


async def test_memory_show_of_someone_else_is_refused_for_non_admins(start: Start) -> None:
    user_option = [{"name": "user", "type": 6, "value": str(ALICE_ID)}]
    async with start("Hi.") as bot:
        await bot.say("message_dm")
        await bot.reply_in(DM_CHANNEL_ID)
        (followup,) = await bot.command(interaction_create("show", user_option, user_id=BOB_ID))
    assert followup.json["content"] == "Sorry, only the bot's admins can do that."


async def test_memory_agents_is_refused_for_non_admins_and_listed_for_admins(
    start: Start,
) -> None:
    async with start("Hi.", admins=[f"discord:{BOB_ID}"]) as bot:
        await bot.say("message_dm")
        await bot.reply_in(DM_CHANNEL_ID)
        (refused,) = await bot.command(interaction_create("agents", user_id=ALICE_ID))
        (listed,) = await bot.command(interaction_create("agents", user_id=BOB_ID))
    assert refused.json["content"] == "Sorry, only the bot's admins can do that."
    assert listed.json["content"].startswith("1 agent(s):")
    assert f"discord:{ALICE_ID}" in listed.json["content"]


async def test_manage_server_makes_an_admin_when_platform_admins_is_on(start: Start) -> None:
    async with start("Hi.", platform_admins=True) as bot:
        await bot.say("message_dm")
        await bot.reply_in(DM_CHANNEL_ID)
        (refused,) = await bot.command(interaction_create("agents", user_id=ALICE_ID))
        (listed,) = await bot.command(interaction_create("agents", user_id=BOB_ID))  # a Mod
    assert refused.json["content"] == "Sorry, only the bot's admins can do that."
    assert f"discord:{ALICE_ID}" in listed.json["content"]


async def test_memory_export_uploads_the_agent_as_a_json_file(start: Start) -> None:
    async with start("Noted.") as bot:
        await bot.say("message_dm")
        await bot.reply_in(DM_CHANNEL_ID)
        (followup,) = await bot.command(interaction_create("export"))
    assert followup.json["content"] == f"Here is everything I remember about discord:{ALICE_ID}."
    assert followup.json["flags"] & EPHEMERAL
    ((filename, data),) = followup.files
    assert filename == f"discord_{ALICE_ID}.json"
    exported = json.loads(data)
    assert exported["format"] == "botmem-agent"
    assert exported["agent_key"] == f"discord:{ALICE_ID}"


async def test_memory_wipe_asks_then_forgets(start: Start) -> None:
    confirm = [{"name": "confirm", "type": 5, "value": True}]
    async with start("Noted.") as bot:
        await bot.say("message_dm")
        await bot.reply_in(DM_CHANNEL_ID)
        (asked,) = await bot.command(interaction_create("wipe"))
        (done,) = await bot.command(interaction_create("wipe", confirm))
        assert await bot.app.stores.agents.get(f"discord:{ALICE_ID}") is None
    assert "`/memory wipe confirm:True`" in asked.json["content"]
    assert done.json["content"] == f"Done: I have forgotten everything about discord:{ALICE_ID}."


async def test_check_in_without_an_inbound_opens_a_dm(start: Start) -> None:
    async with start() as bot:
        message = OutboundMessage(
            "discord", f"discord:{ALICE_ID}", "Time for tea?", user_id=str(ALICE_ID)
        )
        await bot.adapter.send(message)
    (opened,) = bot.fake.find("POST", "/users/@me/channels")
    assert opened.json == {"recipient_id": ALICE_ID}
    (sent,) = bot.fake.posted(DM_CHANNEL_ID)
    assert sent.json["content"] == "Time for tea?"
    assert "message_reference" not in sent.json


async def test_private_reply_outside_an_interaction_goes_to_a_dm(start: Start) -> None:
    async with start() as bot:
        message = OutboundMessage(
            "discord",
            f"discord:{ALICE_ID}",
            "Just for you.",
            channel_id=str(CHANNEL_ID),
            user_id=str(ALICE_ID),
            reply_to="interaction:1",  # an interaction this process never saw (a restart)
            private=True,
        )
        await bot.adapter.send(message)
    (sent,) = bot.fake.posted(DM_CHANNEL_ID)
    assert sent.json["content"] == "Just for you."
    (note,) = bot.fake.posted(CHANNEL_ID)
    assert note.json["content"].startswith(f"<@{ALICE_ID}>")


async def test_rejected_token_is_a_config_error_and_start_can_be_retried(
    fake: FakeDiscord,
) -> None:
    adapter = _adapter()
    fake.token_valid = False
    with pytest.raises(ConfigError, match="DISCORD_BOT_TOKEN"):
        await adapter.start(_no_events)
    assert fake.identify is None
    fake.token_valid = True
    await adapter.start(_no_events)
    await adapter.stop()
    await asyncio.wait_for(adapter.wait_closed(), 5)
    assert fake.identify is not None


async def test_privileged_intent_refused_by_the_gateway_is_a_config_error(
    fake: FakeDiscord,
) -> None:
    fake.close_on_identify = 4014  # "Disallowed intent(s)"
    with pytest.raises(ConfigError, match="Message Content intent"):
        await _adapter(message_content=True).start(_no_events)


async def test_gateway_closing_before_ready_is_a_clear_error(fake: FakeDiscord) -> None:
    fake.close_on_identify = 4004  # "Authentication failed"
    with pytest.raises(DiscordStartError, match=r"ended before it was ready.*4004"):
        await _adapter().start(_no_events)


async def test_a_shard_process_connects_only_its_shard_and_answers_its_server(
    start: Start, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    fake.guilds.append(guild_create(OTHER_GUILD_ID))
    caplog.set_level(logging.INFO, logger="adapters.discord")
    async with start("Bob likes chess.", shard_count=2, shard_ids=[1]) as bot:
        assert bot.fake.identified_shards == [[1, 2]]
        client = bot.adapter.client
        assert client.get_guild(OTHER_GUILD_ID) is not None  # on shard 1
        assert client.get_guild(GUILD_ID) is None  # on shard 0: another process's
        said = await bot.say("message_guild_mention", guild_id=str(OTHER_GUILD_ID))
        (sent,) = await bot.reply_in(CHANNEL_ID)
        await bot.fake.settle()
    assert sent.json["content"] == "Bob likes chess."
    assert str(sent.json["message_reference"]["message_id"]) == said["id"]
    assert bot.user_texts() == ["[Alice] what do you remember about @Bob?"]
    assert bot.fake.find("PUT", "/commands") == []  # the shard 0 process registers /memory
    logged = [r.getMessage() for r in caplog.records if r.name == "adapters.discord"]
    assert "discord: connecting shards [1] of 2" in logged
    assert "discord: ready on shards [1] of 2" in logged


async def test_the_shard_0_process_answers_dms_and_registers_the_command(
    start: Start, fake: FakeDiscord
) -> None:
    fake.guilds.append(guild_create(OTHER_GUILD_ID))
    async with start("Hello Alice.", shard_count=2, shard_ids=[0]) as bot:
        assert bot.fake.identified_shards == [[0, 2]]
        assert bot.adapter.client.get_guild(GUILD_ID) is not None
        assert bot.adapter.client.get_guild(OTHER_GUILD_ID) is None
        await bot.say("message_dm")
        (sent,) = await bot.reply_in(DM_CHANNEL_ID)
        await bot.fake.wait_for(lambda: bot.fake.find("PUT", f"/applications/{BOT_ID}/commands"))
    assert sent.json["content"] == "Hello Alice."


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("shard_count = 2\nshard_ids = [1, 2]", "shard_ids [2] not in range(shard_count)"),
        ("shard_count = 2\nshard_ids = [-1]", "shard_ids [-1] not in range(shard_count)"),
        ("shard_ids = [0, 1]", "shard_ids needs shard_count"),
        ("shard_count = 4\nshard_ids = [1, 1]", "names a shard twice"),
        ("shard_count = -1", "shard_count: Input should be greater than or equal to 0"),
    ],
)
def test_bad_shard_settings_name_the_key(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"[discord]\n{table}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert info.value.key in {"discord.shard_ids", "discord.shard_count"}
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_shard_ids_can_come_from_the_environment_per_process(tmp_path: Path) -> None:
    path = tmp_path / "shared.toml"
    path.write_text("[discord]\nshard_count = 4\n")
    settings = load_settings(path, {"BOTMEM_DISCORD__SHARD_IDS": "[2, 3]"})
    assert settings.discord is not None
    assert (settings.discord.shard_count, settings.discord.shard_ids) == (4, [2, 3])
    with pytest.raises(ConfigError, match="BOTMEM_DISCORD__SHARD_IDS"):
        load_settings(path, {"BOTMEM_DISCORD__SHARD_IDS": "[4]"})


@pytest.mark.parametrize("sharding", [{}, {"shard_count": 1}])
async def test_gateway_requiring_sharding_is_a_config_error(
    fake: FakeDiscord, sharding: dict[str, Any]
) -> None:
    fake.close_on_identify = 4011  # "Sharding required"
    with pytest.raises(ConfigError, match=r"discord.shard_count: Discord requires sharding"):
        await _adapter(**sharding).start(_no_events)


def _adapter(**discord_settings: Any) -> DiscordAdapter:
    settings = make_settings(discord=discord_settings)
    assert settings.discord is not None
    return DiscordAdapter(settings.discord, "fake.token", guild_ready_timeout=0.01)


async def _no_events(inbound: Any) -> None:
    raise AssertionError("no event expected")
