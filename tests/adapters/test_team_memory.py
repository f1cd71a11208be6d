"""End to end: two people in one Telegram group share the team block, not their own blocks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.telegram import TelegramAdapter
from botmem.testing import ScriptedLLM
from botmem.testing.scripted import calls, reply
from tests.adapters.fake_telegram import GROUP_ID, FakeTelegram, message_update, user
from tests.helpers import make_settings, open_app

ANN = user(1, "Ann")
BOB = user(2, "Bob")


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram().running() as server:
        yield server


async def test_team_fact_reaches_the_other_member_but_private_facts_do_not(
    fake: FakeTelegram,
) -> None:
    llm = ScriptedLLM(
        [
            calls(
                ("core_memory_append", {"label": "team", "content": "The team ships on Fridays."}),
                ("core_memory_append", {"label": "human", "content": "Ann likes tea"}),
            ),
            reply("Noted: Fridays."),
            reply("We ship on Fridays."),
            reply("Hi Bob, in private."),
        ]
    )
    settings = make_settings(telegram={"base_url": fake.base_url, "poll_timeout": 1})
    assert settings.telegram is not None
    app = await open_app(settings, llm)
    await app.start([TelegramAdapter(settings.telegram, "123456:TEST")])
    try:
        text = "@botmem_bot we ship on Fridays, and I like tea"
        await fake.push_update(message_update(GROUP_ID, ANN, text))
        await fake.wait_for("sendMessage", chat_id=GROUP_ID)
        await fake.push_update(message_update(GROUP_ID, BOB, "@botmem_bot when do we ship?"))
        await fake.wait_for("sendMessage", count=2, chat_id=GROUP_ID)
        await fake.push_update(message_update(2, BOB, "just us now"))
        await fake.wait_for("sendMessage", chat_id=2)

        bob_asks = llm.tool_requests[2]
        assert bob_asks.messages[-1]["content"] == "[Bob] when do we ship?"
        assert "ships on Fridays" in bob_asks.system
        assert "Ann likes tea" not in bob_asks.system
        assert "Ann likes tea" in llm.tool_requests[1].system  # Ann's own next step sees it

        ann_blocks = {b.label: b for b in await app.stores.blocks.for_agent("telegram:1")}
        bob_blocks = {b.label: b for b in await app.stores.blocks.for_agent("telegram:2")}
        assert bob_blocks["team"].id == ann_blocks["team"].id
        assert bob_blocks["team"].shared_name == f"telegram:{GROUP_ID}:team"
        assert bob_blocks["human"].id != ann_blocks["human"].id
        assert "Ann likes tea" not in bob_blocks["human"].value
    finally:
        await app.stop()
        await app.aclose()
    assert fake.texts(GROUP_ID) == ["Noted: Fridays.", "We ship on Fridays."]
    assert fake.texts(2) == ["Hi Bob, in private."]
    assert "Ann likes tea" not in llm.tool_requests[3].system  # nor in Bob's DM
