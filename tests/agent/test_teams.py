"""The shared team block and speaker names, as the runner applies them to group messages."""

from __future__ import annotations

from dataclasses import replace

from botmem.events import InboundMessage
from botmem.testing import FakeAdapter, ScriptedLLM
from botmem.testing.scripted import call, reply
from tests.helpers import make_settings, open_app


def in_group(chat: FakeAdapter, user: str, text: str, team: str) -> InboundMessage:
    inbound = chat.inbound(user, text)
    return replace(
        inbound,
        team_id=team,
        channel_id=f"#{team}",
        is_direct=False,
        mentions_bot=True,
        user_name=f"Person {user}",
    )


async def test_a_team_fact_reaches_teammates_but_private_blocks_do_not() -> None:
    llm = ScriptedLLM()
    app = await open_app(make_settings(telegram={}), llm)
    chat = FakeAdapter("telegram")
    await app.start([chat])
    llm.extend(
        [
            call("core_memory_append", label="team", content="Release every Friday."),
            call("core_memory_append", label="human", content="Ann is vegetarian."),
            reply("Got it."),
            reply("Fridays."),
        ]
    )
    await chat.deliver(in_group(chat, "ann", "we release on fridays; I'm vegetarian", "g1"))
    await chat.deliver(in_group(chat, "bob", "when do we release?", "g1"))
    bob_prompt = llm.tool_requests[-1].system
    assert "Release every Friday." in bob_prompt
    assert "vegetarian" not in bob_prompt
    assert "[Person bob] when do we release?" in str(llm.tool_requests[-1].messages)
    ann_team = await app.stores.blocks.get("telegram:ann", "team")
    bob_team = await app.stores.blocks.get("telegram:bob", "team")
    assert ann_team is not None and bob_team is not None
    assert ann_team.id == bob_team.id and ann_team.shared_name == "telegram:g1:team"
    await app.aclose()


async def test_each_team_sees_only_its_own_team_block() -> None:
    llm = ScriptedLLM()
    app = await open_app(make_settings(telegram={}), llm)
    chat = FakeAdapter("telegram")
    await app.start([chat])
    llm.extend(
        [
            call("core_memory_append", label="team", content="Team one codename: Falcon."),
            reply("ok"),
            reply("hello"),
            reply("back"),
        ]
    )
    await chat.deliver(in_group(chat, "ann", "our codename is Falcon", "g1"))
    await chat.deliver(in_group(chat, "ann", "hi other team", "g2"))
    assert "Falcon" not in llm.tool_requests[-1].system
    team = await app.stores.blocks.get("telegram:ann", "team")
    assert team is not None and team.shared_name == "telegram:g2:team"
    await chat.deliver(in_group(chat, "ann", "back in team one", "g1"))
    assert "Falcon" in llm.tool_requests[-1].system
    await app.aclose()


async def test_the_team_block_can_be_switched_off() -> None:
    llm = ScriptedLLM([reply("hi")])
    app = await open_app(make_settings(telegram={"team_block": False}), llm)
    chat = FakeAdapter("telegram")
    await app.start([chat])
    await chat.deliver(in_group(chat, "ann", "hello", "g1"))
    assert await app.stores.blocks.get("telegram:ann", "team") is None
    await app.aclose()


async def test_dms_show_no_speaker_prefix_and_attach_no_team() -> None:
    llm = ScriptedLLM([reply("hi")])
    app = await open_app(make_settings(telegram={}), llm)
    chat = FakeAdapter("telegram")
    await app.start([chat])
    assert await chat.say("ann", "hello there") == "hi"
    assert llm.tool_requests[-1].messages[-1]["content"] == "hello there"
    assert await app.stores.blocks.get("telegram:ann", "team") is None
    await app.aclose()
