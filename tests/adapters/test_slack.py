"""The Slack adapter with the real slack-bolt against a fake Slack on 127.0.0.1.

HTTP events mode: events and slash commands are posted, signed, to the adapter's port.
Socket Mode: the fake pushes envelopes over its WebSocket and records the acks.
"""

from __future__ import annotations

import itertools
import json
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.signature import SignatureVerifier

from adapters.slack import SlackAdapter
from botmem.app import App
from botmem.commands import REFUSED
from botmem.errors import ConfigError
from botmem.events import OutboundMessage
from botmem.platform_config import SlackSettings
from botmem.testing import ScriptedLLM, reply
from tests.adapters.fake_slack import FakeSlack
from tests.helpers import make_settings, open_app

SECRET = "test-signing-secret"
PAYLOADS = Path(__file__).parent / "payloads" / "slack"
LIMIT = SlackAdapter.capabilities.max_message_chars


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    fake.add_user("U9", "Ada Lovelace")
    fake.add_user("U2", "Bob")
    yield fake
    await fake.close()


@dataclass
class Bot:
    app: App
    adapter: SlackAdapter
    llm: ScriptedLLM
    url: str = ""


@asynccontextmanager
async def running(
    slack: FakeSlack, llm: ScriptedLLM | None = None, **slack_settings: Any
) -> AsyncIterator[Bot]:
    port = _free_port()
    config: dict[str, Any] = {"mode": "http", "base_url": slack.base_url, "http_port": port}
    config.update(slack_settings)
    settings = make_settings(slack=config)
    assert settings.slack is not None
    if settings.slack.mode == "socket":
        adapter = SlackAdapter(settings.slack, "xoxb-test", app_token="xapp-test")
    else:
        adapter = SlackAdapter(settings.slack, "xoxb-test", signing_secret=SECRET)
    llm = llm or ScriptedLLM(responder=lambda messages: reply("Noted."))
    app = await open_app(settings, llm)
    await app.start([adapter])
    assert slack.called("auth.test"), "the adapter did not start"
    try:
        yield Bot(app, adapter, llm, f"http://127.0.0.1:{port}/slack/events")
    finally:
        await app.stop()
        await app.aclose()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def payload(name: str, **event: Any) -> dict[str, Any]:
    """A recorded payload; keyword arguments replace fields of its event."""
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    data.get("event", {}).update(event)
    if event.get("ts"):
        data["event_id"] = f"Ev{event['ts']}{data['event']['type']}"
    return data


def command(text: str, slack: FakeSlack, user_id: str = "U9") -> dict[str, str]:
    """A slash command payload; its response URL is named ``<user>-<n>``."""
    data: dict[str, str] = json.loads((PAYLOADS / "slash_command.json").read_text())
    n = next(_commands)
    data.update(text=text, user_id=user_id, trigger_id=f"1234.{n}.abcdef")
    data["response_url"] = slack.response_url(f"{user_id}-{n}")
    return data


_commands = itertools.count(1)


async def post(
    bot: Bot,
    body: dict[str, Any],
    *,
    form: bool = False,
    retry: int = 0,
    age: float = 0,
    secret: str = SECRET,
) -> int:
    """Post to the adapter as Slack does, signed with `secret`; returns the HTTP status."""
    raw = urllib.parse.urlencode(body) if form else json.dumps(body)
    timestamp = str(int(time.time() - age))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=raw)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded" if form else "application/json",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": str(signature),
    }
    if retry:
        headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
    async with (
        aiohttp.ClientSession() as session,
        session.post(bot.url, data=raw, headers=headers) as r,
    ):
        return r.status


def llm_saw(llm: ScriptedLLM, text: str) -> bool:
    return any(
        text in str(message.get("content")) for r in llm.tool_requests for message in r.messages
    )


async def test_a_dm_gets_a_reply(slack: FakeSlack) -> None:
    async with running(slack) as bot:
        assert await post(bot, payload("dm_message")) == 200
        await slack.wait_for(lambda: len(slack.posts) == 1)
    (sent,) = slack.posts
    assert (sent["channel"], sent["text"]) == ("D9", "Noted.")
    assert "thread_ts" not in sent
    assert llm_saw(bot.llm, "I'm Ada & I like <tags>")


async def test_a_channel_message_without_mention_gets_no_reply(slack: FakeSlack) -> None:
    async with running(slack) as bot:
        assert await post(bot, payload("channel_message")) == 200
        await bot.app.router.drain()  # the event was taken before the 200
        assert not slack.posts
        assert not bot.llm.requests


async def test_a_mention_is_answered_in_its_thread_once_for_both_events(slack: FakeSlack) -> None:
    async with running(slack) as bot:
        assert await post(bot, payload("channel_mention")) == 200
        assert await post(bot, payload("channel_message_mention")) == 200
        await bot.app.router.drain()
        await slack.wait_for(lambda: len(slack.posts) == 1)
    (sent,) = slack.posts
    assert (sent["channel"], sent["thread_ts"]) == ("C1", "1700000100.000200")
    assert llm_saw(bot.llm, "[Ada Lovelace] what is our deploy day?")
    assert not llm_saw(bot.llm, "<@UBOT>")
    assert len(bot.llm.tool_requests) == 1


async def test_a_follow_up_in_the_bots_thread_needs_no_mention(slack: FakeSlack) -> None:
    async with running(slack) as bot:
        await post(bot, payload("channel_mention"))
        await slack.wait_for(lambda: len(slack.posts) == 1)
        follow_up = payload(
            "channel_message", ts="1700000150.000100", thread_ts="1700000100.000200"
        )
        follow_up["event"]["parent_user_id"] = "U9"  # the thread is the person's message
        follow_up["event"]["text"] = "and on Fridays?"
        await post(bot, follow_up)
        await slack.wait_for(lambda: len(slack.posts) == 2)
    assert slack.posts[1]["thread_ts"] == "1700000100.000200"
    assert llm_saw(bot.llm, "[Ada Lovelace] and on Fridays?")


async def test_a_slack_retry_gets_no_second_reply(slack: FakeSlack) -> None:
    async with running(slack) as bot:
        assert await post(bot, payload("dm_message")) == 200
        assert await post(bot, payload("dm_message"), retry=1) == 200
        await bot.app.router.drain()
        await slack.wait_for(lambda: len(slack.posts) == 1)
    assert len(slack.posts) == 1
    assert len(bot.llm.tool_requests) == 1


async def test_a_long_reply_is_split_without_losing_anything(slack: FakeSlack) -> None:
    words = [f"word{i:04d}" for i in range(1000)]
    long_text = " ".join(words)  # 9,000 characters
    async with running(slack, ScriptedLLM([reply(long_text)])) as bot:
        await post(bot, payload("dm_message"))
        await bot.app.router.drain()
    texts = [sent["text"] for sent in slack.posts]
    assert len(texts) == 3
    assert all(len(text) <= LIMIT for text in texts)
    assert " ".join(texts).split() == words


async def test_a_rate_limited_post_is_retried_and_delivered(slack: FakeSlack) -> None:
    slack.rate_limit_next_posts(1)
    async with running(slack) as bot:
        await post(bot, payload("dm_message"))
        await bot.app.router.drain()
    assert slack.refused_posts == 1
    assert [sent["text"] for sent in slack.posts] == ["Noted."]


async def test_bad_signatures_and_stale_timestamps_are_refused(slack: FakeSlack) -> None:
    async with running(slack) as bot:
        assert await post(bot, payload("dm_message"), secret="wrong-secret") == 401
        assert await post(bot, payload("dm_message"), age=6 * 60) == 401
        await bot.app.router.drain()
        assert not slack.posts
        assert not bot.llm.requests
        assert not slack.called("users.info")


async def test_url_verification_and_other_events_are_answered(slack: FakeSlack) -> None:
    challenge = {
        "token": "XXYYZZ",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595",
        "type": "url_verification",
    }
    async with running(slack) as bot, aiohttp.ClientSession() as session:
        raw = json.dumps(challenge)
        timestamp = str(int(time.time()))
        signature = SignatureVerifier(SECRET).generate_signature(timestamp=timestamp, body=raw)
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": str(signature),
        }
        async with session.post(bot.url, data=raw, headers=headers) as response:
            assert response.status == 200
            assert (await response.json())["challenge"] == challenge["challenge"]
        reaction = payload("channel_message")
        reaction["event"] = {"type": "reaction_added", "user": "U9", "reaction": "tada"}
        assert await post(bot, reaction) == 200  # not 404: Slack would retry it
    assert not slack.posts


async def test_the_slash_command_is_acked_and_answered_ephemerally(slack: FakeSlack) -> None:
    async with running(slack) as bot:
        assert await post(bot, command("help", slack), form=True) == 200
        await slack.wait_for(lambda: len(slack.responses) == 1)
        assert await post(bot, command("", slack), form=True) == 200
        await slack.wait_for(lambda: len(slack.responses) == 2)
    first, empty = slack.responses
    assert first["response_type"] == "ephemeral"
    assert "Memory commands:" in first["text"]
    assert "Memory commands:" in empty["text"]  # an empty command is help
    assert not slack.posts  # nothing in the channel
    assert not bot.llm.requests


async def test_show_lists_the_persons_own_memory(slack: FakeSlack) -> None:
    async with running(slack) as bot:
        await post(bot, payload("dm_message"))
        await slack.wait_for(lambda: len(slack.posts) == 1)
        await post(bot, command("show", slack), form=True)
        await slack.wait_for(lambda: len(slack.responses) == 1)
    assert "Memory of slack:T1:U9:" in slack.responses[0]["text"]


async def test_admin_commands_are_refused_to_others_and_work_for_admins(slack: FakeSlack) -> None:
    async with running(slack, admins=["slack:T1:U9"]) as bot:
        await post(bot, payload("dm_message"))
        await slack.wait_for(lambda: len(slack.posts) == 1)
        await post(bot, command("agents", slack, user_id="U2"), form=True)
        await post(bot, command("show <@U9|ada>", slack, user_id="U2"), form=True)
        await slack.wait_for(lambda: len(slack.responses) == 2)
        assert [r["text"] for r in slack.responses] == [REFUSED, REFUSED]
        await post(bot, command("agents", slack), form=True)
        await slack.wait_for(lambda: len(slack.responses) == 3)
        await post(bot, command("show <@U9|ada>", slack), form=True)
        await slack.wait_for(lambda: len(slack.responses) == 4)
    assert "slack:T1:U9 (last active" in slack.responses[2]["text"]
    assert "Memory of slack:T1:U9:" in slack.responses[3]["text"]


async def test_workspace_admins_are_admins_when_platform_admins_is_on(slack: FakeSlack) -> None:
    slack.add_user("U2", "Bob", admin=True)
    async with running(slack, platform_admins=True) as bot:
        await post(bot, command("agents", slack, user_id="U2"), form=True)
        await post(bot, command("agents", slack, user_id="U9"), form=True)
        await slack.wait_for(lambda: len(slack.responses) == 2)
    by_user = {r["name"].split("-")[0]: r["text"] for r in slack.responses}
    assert by_user == {"U2": "No agents found.", "U9": REFUSED}
    assert len(slack.called("users.info")) == 2


async def test_export_uploads_the_file_to_the_persons_dm(slack: FakeSlack) -> None:
    async with running(slack) as bot:
        await post(bot, payload("dm_message"))
        await slack.wait_for(lambda: len(slack.posts) == 1)
        await post(bot, command("export", slack), form=True)
        await slack.wait_for(lambda: len(slack.responses) == 1)
    (completed,) = slack.called("files.completeUploadExternal")
    assert completed["channel_id"] == "DU9"
    assert completed["initial_comment"].startswith("Here is everything I remember")
    (uploaded,) = slack.uploads.values()
    exported = json.loads(uploaded)
    assert exported["format"] == "botmem-agent"
    assert slack.called("conversations.open") == [{"users": "U9"}]
    assert slack.responses[0]["response_type"] == "ephemeral"
    assert "direct message" in slack.responses[0]["text"]


async def test_a_check_in_is_sent_without_an_inbound(slack: FakeSlack) -> None:
    async with running(slack) as bot:
        await bot.adapter.send(
            OutboundMessage("slack", "slack:T1:U9", "How did the demo go?", channel_id="C1")
        )
        await bot.adapter.send(OutboundMessage("slack", "slack:T1:U9", "Hi!", user_id="T1:U9"))
        check_in_ts = slack.messages[0]["ts"]
        answer = payload("thread_reply_to_bot", ts="1700009000.000100", thread_ts=check_in_ts)
        await post(bot, answer)
        await slack.wait_for(lambda: len(slack.posts) == 3)
    assert [sent["channel"] for sent in slack.posts] == ["C1", "DU9", "C1"]
    assert slack.posts[2]["thread_ts"] == check_in_ts


async def test_socket_mode_round_trip(slack: FakeSlack) -> None:
    async with running(slack, mode="socket") as bot:
        (opened,) = [c for c in slack.calls if c.method == "apps.connections.open"]
        assert opened.token == "xapp-test"
        await slack.push("events_api", payload("dm_message"), "env-1")
        await slack.wait_for(lambda: len(slack.posts) == 1)
        await slack.push("slash_commands", command("help", slack), "env-2")
        await slack.wait_for(lambda: len(slack.responses) == 1 and len(slack.acks) == 2)
        assert {ack["envelope_id"] for ack in slack.acks} == {"env-1", "env-2"}
        assert bot.llm.tool_requests
    assert slack.posts[0]["channel"] == "D9"
    assert "Memory commands:" in slack.responses[0]["text"]


def test_a_missing_secret_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="signing secret"):
        SlackAdapter(SlackSettings(mode="http"), "xoxb-test")
    with pytest.raises(ConfigError, match="app token"):
        SlackAdapter(SlackSettings(mode="socket"), "xoxb-test")
