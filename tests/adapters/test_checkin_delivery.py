"""A check-in planned in a chat is delivered there, through the real SDK and a fake platform.

The agent (scripted) calls schedule_checkin while answering; the FrozenClock is moved past
the time and `run_due()` fires it: the agent's text arrives in the conversation it was planned
in, as a new message (not a reply), exactly once.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.signature import SignatureVerifier

from adapters.discord import DiscordAdapter
from adapters.slack import SlackAdapter
from adapters.telegram import TelegramAdapter
from botmem.app import App
from botmem.stores.jobs import Job
from botmem.testing import FrozenClock, ScriptedLLM, call, reply
from tests.adapters.fake_discord import BOT_ID as DISCORD_BOT_ID
from tests.adapters.fake_discord import CHANNEL_ID, DM_CHANNEL_ID, FakeDiscord, message_create
from tests.adapters.fake_slack import FakeSlack
from tests.adapters.fake_telegram import GROUP_ID, FakeTelegram, message_update, user
from tests.helpers import make_settings, open_app

TOKEN = "123456:TEST"
ANN = user(1, "Ann", "Smith")
NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
TOMORROW_AT_9 = datetime(2026, 3, 15, 9, 0, tzinfo=UTC)
SLACK_SECRET = "test-signing-secret"
SLACK_PAYLOADS = Path(__file__).parent / "payloads" / "slack"


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
async def telegram_bot(
    fake: FakeTelegram, llm: ScriptedLLM, clock: FrozenClock
) -> AsyncIterator[App]:
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
    clock.advance(timedelta(**advance))
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
        assert await fire_due(app, clock, hours=1) == 0

    assert telegram.texts(GROUP_ID) == ["Will do.", "Deploy time, everyone!"]
    assert "reply_parameters" not in telegram.of("sendMessage", GROUP_ID)[1].params
    assert telegram.texts(1) == []  # not to Ann's DM


# --- Slack ----------------------------------------------------------------------------------


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    fake.add_user("U9", "Ada Lovelace")
    yield fake
    await fake.close()


@dataclass
class SlackBot:
    app: App
    url: str

    async def post_event(self, body: dict[str, Any]) -> None:
        """Post an event as Slack does, signed; the adapter must take it."""
        raw = json.dumps(body)
        timestamp = str(int(time.time()))
        signature = SignatureVerifier(SLACK_SECRET).generate_signature(
            timestamp=timestamp, body=raw
        )
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": str(signature),
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url, data=raw, headers=headers) as response,
        ):
            assert response.status == 200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def slack_bot(
    fake: FakeSlack, llm: ScriptedLLM, clock: FrozenClock
) -> AsyncIterator[SlackBot]:
    port = free_port()
    settings = make_settings(slack={"mode": "http", "base_url": fake.base_url, "http_port": port})
    assert settings.slack is not None
    app = await open_app(settings, llm, clock=clock)
    await app.start([SlackAdapter(settings.slack, "xoxb-test", signing_secret=SLACK_SECRET)])
    try:
        yield SlackBot(app, f"http://127.0.0.1:{port}/slack/events")
    finally:
        await app.stop()
        await app.aclose()


def slack_event(name: str, text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SLACK_PAYLOADS / f"{name}.json").read_text())
    data["event"]["text"] = text
    data["event"].pop("blocks", None)  # the text is what the person wrote
    return data


async def test_slack_dm_checkin_arrives_in_the_dm_once(slack: FakeSlack) -> None:
    clock = FrozenClock(NOW)
    llm = planning_script("remind them to call mum", "I'll remind you at 9.", "Time to call mum!")
    async with slack_bot(slack, llm, clock) as bot:
        await bot.post_event(slack_event("dm_message", "remind me tomorrow at 9 to call mum"))
        await slack.wait_for(lambda: len(slack.posts) == 1)
        await bot.app.router.drain()
        job = await only_job(bot.app)
        assert (job.agent_key, job.next_run_at) == ("slack:T1:U9", TOMORROW_AT_9)
        assert job.payload["conversation"]["channel_id"] == "D9"

        assert await fire_due(bot.app, clock, hours=21, minutes=1) == 1
        assert await fire_due(bot.app, clock, hours=1) == 0

    answer, checkin = slack.posts
    assert (answer["channel"], answer["text"]) == ("D9", "I'll remind you at 9.")
    assert (checkin["channel"], checkin["text"]) == ("D9", "Time to call mum!")
    assert "thread_ts" not in checkin


async def test_slack_channel_checkin_goes_to_the_thread_it_was_planned_in(
    slack: FakeSlack,
) -> None:
    clock = FrozenClock(NOW)
    llm = planning_script("remind the channel to deploy", "Will do.", "Deploy time, everyone!")
    async with slack_bot(slack, llm, clock) as bot:
        mention = slack_event("channel_mention", "<@UBOT> remind us tomorrow at 9 to deploy")
        await bot.post_event(mention)
        await slack.wait_for(lambda: len(slack.posts) == 1)
        await bot.app.router.drain()
        assert await fire_due(bot.app, clock, hours=21, minutes=1) == 1
        assert await fire_due(bot.app, clock, hours=1) == 0

    thread = mention["event"]["ts"]
    answer, checkin = slack.posts
    assert (answer["channel"], answer["thread_ts"]) == ("C1", thread)
    assert (checkin["channel"], checkin["thread_ts"], checkin["text"]) == (
        "C1",
        thread,
        "Deploy time, everyone!",
    )


# --- Discord --------------------------------------------------------------------------------


@asynccontextmanager
async def discord_bot(
    fake: FakeDiscord, llm: ScriptedLLM, clock: FrozenClock
) -> AsyncIterator[App]:
    settings = make_settings(discord={})
    assert settings.discord is not None
    app = await open_app(settings, llm, clock=clock)
    adapter = DiscordAdapter(settings.discord, "fake.token", guild_ready_timeout=0.01)
    await app.start([adapter])
    closed = asyncio.ensure_future(adapter.wait_closed())
    fake.watch(closed)
    try:
        yield app
    finally:
        await app.stop()
        await app.aclose()
        await asyncio.wait_for(closed, 5)  # raises what ended the connection, if anything


@pytest.mark.parametrize(
    ("payload", "channel_id"),
    [("message_dm", DM_CHANNEL_ID), ("message_guild_mention", CHANNEL_ID)],
    ids=["dm", "guild-channel"],
)
async def test_discord_checkin_arrives_where_it_was_planned(
    discord_fake: FakeDiscord, payload: str, channel_id: int
) -> None:
    clock = FrozenClock(NOW)
    llm = planning_script("remind them to call mum", "I'll remind you at 9.", "Time to call mum!")
    async with discord_bot(discord_fake, llm, clock) as app:
        text = "remind me tomorrow at 9 to call mum"
        if payload != "message_dm":
            text = f"<@{DISCORD_BOT_ID}> {text}"
        await discord_fake.dispatch("MESSAGE_CREATE", message_create(payload, content=text))
        await discord_fake.wait_for(lambda: discord_fake.posted(channel_id))
        await app.router.drain()
        job = await only_job(app)
        assert job.payload["conversation"]["channel_id"] == str(channel_id)

        assert await fire_due(app, clock, hours=21, minutes=1) == 1
        assert await fire_due(app, clock, hours=1) == 0

    answer, checkin = discord_fake.posted(channel_id)
    assert answer.json["content"] == "I'll remind you at 9."
    assert "message_reference" in answer.json
    assert checkin.json["content"] == "Time to call mum!"
    assert "message_reference" not in checkin.json
    others = [r for r in discord_fake.requests if r.path.endswith("/messages") and r.status == 200]
    assert len(others) == 2  # nothing sent to any other channel
