"""In-chat memory commands through the router, as a platform adapter delivers them."""

from __future__ import annotations

import itertools
import json
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest

from botmem.app import App
from botmem.events import InboundMessage, OutboundMessage
from botmem.testing import FakeAdapter, ScriptedLLM
from botmem.testing.scripted import call, reply
from tests.helpers import make_settings, open_app

ADMIN = "1"
GROUP = "-100"
IDS = itertools.count()


@dataclass
class Bot:
    app: App
    chat: FakeAdapter
    llm: ScriptedLLM


@pytest.fixture
async def bot() -> AsyncIterator[Bot]:
    llm = ScriptedLLM()
    app = await open_app(make_settings(telegram={"admins": [f"telegram:{ADMIN}"]}), llm)
    chat = FakeAdapter("telegram")
    await app.start([chat])
    yield Bot(app, chat, llm)
    await app.aclose()


def command(user: str, text: str, *, group: bool = False) -> InboundMessage:
    return InboundMessage(
        source="telegram",
        message_id=f"cmd-{next(IDS)}",
        agent_key=f"telegram:{user}",
        text=text,
        user_id=user,
        user_name=f"user{user}",
        channel_id=GROUP if group else user,
        team_id=GROUP if group else "",
        is_direct=not group,
        kind="command",
    )


async def run(chat: FakeAdapter, inbound: InboundMessage) -> OutboundMessage:
    before = len(chat.sent)
    assert await chat.deliver(inbound)
    (answer,) = chat.sent[before:]
    return answer


async def talk(chat: FakeAdapter, llm: ScriptedLLM, user: str, fact: str) -> None:
    llm.extend([call("core_memory_append", label="human", content=fact), reply("Noted.")])
    assert await chat.say(user, f"remember: {fact}") == "Noted."


async def test_help_and_unknown_commands_answer_with_the_usage(bot: Bot) -> None:
    assert "Memory commands" in (await run(bot.chat, command("5", ""))).text
    assert "Memory commands" in (await run(bot.chat, command("5", "help"))).text
    unknown = (await run(bot.chat, command("5", "frobnicate now"))).text
    assert unknown.startswith("Unknown command 'frobnicate now'") and "Memory commands" in unknown
    assert bot.llm.requests == []  # commands never reach the model


async def test_a_user_sees_their_own_memory(bot: Bot) -> None:
    assert "no memory of telegram:5" in (await run(bot.chat, command("5", "show"))).text
    await talk(bot.chat, bot.llm, "5", "Likes green tea")
    shown = await run(bot.chat, command("5", "show"))
    assert "[human]" in shown.text and "Likes green tea" in shown.text
    assert "messages in recall memory" in shown.text
    assert not shown.private  # asked in a DM


async def test_other_agents_are_refused_to_non_admins(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    await talk(bot.chat, bot.llm, "5", "Secret: allergic to cats")
    caplog.set_level(logging.WARNING)
    for text in ("show telegram:5", "export 5", "wipe confirm telegram:5", "agents", "team"):
        answer = await run(bot.chat, command("6", text))
        assert answer.text == "Sorry, only the bot's admins can do that.", text
        assert answer.attachment is None
    assert "allergic" in (await bot.app.stores.blocks.get("telegram:5", "human")).value
    assert "telegram:6 (user6) refused: 'agents'" in caplog.text


async def test_admins_can_view_export_list_and_wipe_anyone(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    await talk(bot.chat, bot.llm, "5", "Plays the cello")
    caplog.set_level(logging.WARNING)
    assert "Plays the cello" in (await run(bot.chat, command(ADMIN, "show 5"))).text
    export = await run(bot.chat, command(ADMIN, "export telegram:5"))
    assert export.attachment is not None
    data = json.loads(export.attachment.data)
    assert data["format"] == "botmem-agent" and data["agent_key"] == "telegram:5"
    listing = (await run(bot.chat, command(ADMIN, "agents"))).text
    assert "telegram:5" in listing
    asked = (await run(bot.chat, command(ADMIN, "wipe telegram:5"))).text
    assert "wipe confirm telegram:5" in asked
    assert await bot.app.stores.agents.get("telegram:5") is not None  # nothing yet
    done = (await run(bot.chat, command(ADMIN, "wipe confirm telegram:5"))).text
    assert done.startswith("Done")
    assert await bot.app.stores.agents.get("telegram:5") is None
    assert "admin audit: telegram:1 (user1) wiped telegram:5" in caplog.text


async def test_wipe_needs_the_confirmation_step(bot: Bot) -> None:
    await talk(bot.chat, bot.llm, "5", "Has a dog called Rex")
    early = (await run(bot.chat, command("5", "wipe confirm"))).text
    assert "cannot be undone" in early  # a confirm without asking first only asks
    assert await bot.app.stores.agents.get("telegram:5") is not None
    assert (await run(bot.chat, command("5", "wipe confirm"))).text.startswith("Done")
    assert await bot.app.stores.agents.get("telegram:5") is None
    # the agent starts afresh, with its blocks, on the next message
    bot.llm.extend([reply("Hello, who are you?")])
    assert await bot.chat.say("5", "hi") == "Hello, who are you?"
    human = await bot.app.stores.blocks.get("telegram:5", "human")
    assert human is not None and "Rex" not in human.value
    assert "Rex" not in bot.llm.tool_requests[-1].system


async def test_a_shared_channel_agent_is_only_wiped_by_admins(bot: Bot) -> None:
    channel_key = "telegram:channel:-100"
    await bot.app.stores.agents.ensure(channel_key)
    asked = replace(command("6", "wipe", group=True), agent_key=channel_key)
    assert "only admins can wipe it" in (await run(bot.chat, asked)).text
    assert await bot.app.stores.agents.get(channel_key) is not None


async def test_command_answers_in_a_group_are_private(bot: Bot) -> None:
    answer = await run(bot.chat, command("6", "help", group=True))
    assert answer.private and answer.channel_id == GROUP and answer.user_id == "6"


async def test_admins_edit_the_team_block_of_their_group(bot: Bot) -> None:
    assert "no team block here" in (await run(bot.chat, command(ADMIN, "team"))).text
    saved = await run(bot.chat, command(ADMIN, "team set We ship on Fridays.", group=True))
    assert "We ship on Fridays." in saved.text
    await run(bot.chat, command(ADMIN, "team append Standup at 9:30.", group=True))
    shown = (await run(bot.chat, command(ADMIN, "team", group=True))).text
    assert "We ship on Fridays.\nStandup at 9:30." in shown and "(shared)" in shown
    usage = (await run(bot.chat, command(ADMIN, "team rename x", group=True))).text
    assert usage.startswith("Usage: team set TEXT")
    # a member of the group now sees the team block in their own agent's prompt
    group_msg = replace(bot.chat.inbound("7", "what do we do on fridays?"), team_id=GROUP)
    bot.llm.extend([reply("Ship!")])
    assert await bot.chat.deliver(group_msg)
    assert "We ship on Fridays." in bot.llm.tool_requests[-1].system


async def test_an_over_limit_team_edit_is_refused_with_a_reason(bot: Bot) -> None:
    answer = await run(bot.chat, command(ADMIN, "team set " + "x" * 10_001, group=True))
    assert answer.text.startswith("Not saved:") and "over twice its limit of 5,000" in answer.text


async def test_random_command_text_never_breaks_the_bot(bot: Bot) -> None:
    rng = random.Random(4)
    alphabet = [
        "show",
        "wipe",
        "confirm",
        "export",
        "team",
        "set",
        "agents",
        "help",
        "x",
        "telegram:",
        ":",
        "\x00",
        "é",
        " ",
        "\n",
        "telegram:1",
        "💥",
    ]
    for _ in range(200):
        text = "".join(
            rng.choice(alphabet) + rng.choice(["", " "]) for _ in range(rng.randint(0, 6))
        )
        user = rng.choice(["5", ADMIN])
        answer = await run(bot.chat, command(user, text, group=rng.random() < 0.5))
        assert answer.text and "went wrong" not in answer.text, text
