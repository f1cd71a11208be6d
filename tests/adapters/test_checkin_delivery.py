"""A check-in planned in a chat is delivered there, through the real SDK and a fake platform.

The agent (scripted) calls schedule_checkin while answering; the FrozenClock is moved past
the time and `run_due()` fires it: the agent's text arrives in the conversation it was planned
in, as a new message (not a reply), exactly once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.telegram import TelegramAdapter
from botmem.app import App
from botmem.stores.jobs import Job
from botmem.testing import FrozenClock, ScriptedLLM, call, reply
from tests.adapters.fake_telegram import GROUP_ID, FakeTelegram, message_update, user
from tests.helpers import make_settings, open_app

TOKEN = "123456:TEST"
ANN = user(1, "Ann", "Smith")
NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
TOMORROW_AT_9 = datetime(2026, 3, 15, 9, 0, tzinfo=UTC)


def planning_script(note: str, confirmation: str, checkin_text: str) -> ScriptedLLM:
    """The agent plans a check-in for tomorrow at 9, confirms, and later speaks first."""
    return ScriptedLLM(
        [
            call("schedule_checkin", when="2026-03-15T09:00", note=note),
            reply(confirmation),
            reply(checkin_text),
        ]
    )


def scheduled_texts(llm: ScriptedLLM) -> list[str]:
    """The scheduled wake-ups the agent was given (last user message of each step)."""
    lasts = [[m for m in r.messages if m["role"] == "user"][-1] for r in llm.tool_requests]
    return [str(m["content"]) for m in lasts if "[Scheduled wake-up" in str(m["content"])]


async def only_job(app: App) -> Job:
    (job,) = await app.scheduler.checkins(None)
    return job


# --- Telegram -------------------------------------------------------------------------------


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram().running() as server:
        yield server


@asynccontextmanager
async def telegram_bot(fake: FakeTelegram, llm: ScriptedLLM, clock: FrozenClock) -> AsyncIterator[App]:
    settings = make_settings(telegram={"base_url": fake.base_url, "poll_timeout": 1})
    assert settings.telegram is not None
    app = await open_app(settings, llm, clock=clock)
    await app.start([TelegramAdapter(settings.telegram, TOKEN)])
    try:
        yield app
    finally:
        await app.stop()
        await app.aclose()


async def fire_due(app: App, clock: FrozenClock, **advance: float) -> int:
    """Move the clock, run what came due and let the turns it started finish."""
    clock.advance(**advance)
    fired = await app.scheduler.run_due()
    await app.router.drain()
    return fired


async def test_telegram_dm_checkin_arrives_in_the_dm_once(telegram: FakeTelegram) -> None:
    clock = FrozenClock(NOW)
    llm = planning_script("remind them to call mum", "I'll remind you at 9.", "Time to call mum!")
    async with telegram_bot(telegram, llm, clock) as app:
        await telegram.push_update(
            message_update(1, ANN, "remind me tomorrow at 9 to call mum", message_id=70)
        )
        await telegram.wait_for("sendMessage", chat_id=1)
        await app.router.drain()

        job = await only_job(app)
        assert (job.agent_key, job.next_run_at) == ("telegram:1", TOMORROW_AT_9)
        assert job.payload["note"] == "remind them to call mum"
        conversation: dict[str, Any] = job.payload["conversation"]
        assert conversation["source"] == "telegram"
        assert conversation["channel_id"] == "1" and conversation["is_direct"] is True

        assert await fire_due(app, clock, hours=20) == 0  # 08:00: not yet
        assert telegram.texts(1) == ["I'll remind you at 9."]

        assert await fire_due(app, clock, hours=1, minutes=1) == 1
        await telegram.wait_for("sendMessage", count=2, chat_id=1)
        assert await fire_due(app, clock, hours=1) == 0
        assert await app.scheduler.checkins(None) == []

    assert telegram.texts() == ["I'll remind you at 9.", "Time to call mum!"]
    answer, checkin = telegram.of("sendMessage", 1)
    assert answer.params["reply_parameters"]["message_id"] == 70
    assert "reply_parameters" not in checkin.params  # speaks first: answers no message
    (woken,) = scheduled_texts(llm)
    assert f"Check-in {job.id} that you scheduled: remind them to call mum" in woken


async def test_telegram_group_checkin_goes_to_the_group(telegram: FakeTelegram) -> None:
    clock = FrozenClock(NOW)
    llm = planning_script("remind the group to deploy", "Will do.", "Deploy time, everyone!")
    async with telegram_bot(telegram, llm, clock) as app:
        await telegram.push_update(
            message_update(GROUP_ID, ANN, "@botmem_bot remind us tomorrow at 9 to deploy")
        )
        await telegram.wait_for("sendMessage", chat_id=GROUP_ID)
        await app.router.drain()
        job = await only_job(app)
        assert job.payload["conversation"]["channel_id"] == str(GROUP_ID)
        assert job.payload["conversation"]["is_direct"] is False

        assert await fire_due(app, clock, hours=21, minutes=1) == 1
        await telegram.wait_for("sendMessage", count=2, chat_id=GROUP_ID)
        assert await fire_due(app, clock, hours=1) == 0

    assert telegram.texts(GROUP_ID) == ["Will do.", "Deploy time, everyone!"]
    assert "reply_parameters" not in telegram.of("sendMessage", GROUP_ID)[1].params
    assert telegram.texts(1) == []  # not to Ann's DM
