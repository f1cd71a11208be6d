"""`botmem run` killed with SIGKILL while 100 turns are in flight, then restarted.

A real bot process on SQLite on disk, 100 people writing at once to a fake Telegram, a fake
LLM that answers slowly (a `core_memory_append` of a line unique to the person, then a text
reply), so that at the kill some turns are waiting for their first step, some have applied
their memory edit and wait for the reply, some are sending it and some are done. After the
restart every message must be answered and every edit applied once.

A second test kills the bot at the moment it confirms a batch of Telegram updates (the next
getUpdates with a higher offset), to check the rule "stored before it is acknowledged".

What the design promises for the reply (botmem/router.py): a turn is marked `replied` before
its reply is sent and `delivered` after Telegram accepted it; replay resends `replied` rows.
So a reply Telegram accepted while the process died before `mark_delivered` committed is
sent a second time: at-least-once, bounded by the rows that were `replied` at the kill and
already had their reply at Telegram. Every other reply must arrive exactly once.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botmem.router import BUG_REPLY
from botmem.testing.openai_server import FakeOpenAIServer, Reply, delayed, text, tool_call
from tests.adapters.fake_telegram import Call, FakeTelegram, message_update, user

PEOPLE = 100
FIRST_ID = 1001  # Telegram user (and DM chat) ids FIRST_ID .. FIRST_ID + PEOPLE - 1
KILL_AFTER = 30
"""Replies Telegram has received when the bot is killed (of PEOPLE)."""
START_TIMEOUT = 45
DONE_TIMEOUT = 60
TOKEN = re.compile(r"token-(\d+)")


def line_of(n: int) -> str:
    return f"Likes the colour number {n}"


def reply_of(n: int) -> str:
    return f"Noted, token-{n}."


@dataclass
class SlowModel:
    """Every turn: a core_memory_append of the person's unique line, then a text reply.

    Answers are delayed (seeded, so runs are comparable) and depend only on the request,
    so a step re-asked after the restart gets the same answer."""

    rng: random.Random

    def __call__(self, body: dict[str, Any]) -> Reply:
        messages = body.get("messages", [])
        if not body.get("tools"):  # a summary (not expected with this small history)
            return text("Summary.")
        said = [m for m in messages if m.get("role") == "user"]
        found = TOKEN.search(str(said[-1].get("content", ""))) if said else None
        assert found is not None, f"no token in {said[-1:]}"
        n = int(found.group(1))
        if messages[-1].get("role") == "tool":
            return delayed(text(reply_of(n)), self.rng.uniform(0.5, 3.0))
        append = {"label": "human", "content": line_of(n)}
        return delayed(tool_call("core_memory_append", append), self.rng.uniform(0.2, 1.5))


def write_config(tmp_path: Path, llm_url: str, telegram_url: str) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[llm]\nmodel = "openai/test-model"\napi_base = "{llm_url}"\nmax_retries = 0\n'
        "context_window = 16000\ntimeout = 30\n\n"
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n\n'
        # Vectors from the fake server: no MiniLM load on each of the two starts.
        f'[embeddings]\nprovider = "litellm"\nmodel = "openai/test-embedding"\n'
        f'api_base = "{llm_url}"\napi_key_env = "FAKE_EMBEDDING_KEY"\ndimensions = 64\n\n'
        "[consolidation]\nenabled = false\n\n"
        f'[telegram]\nbase_url = "{telegram_url}"\npoll_timeout = 1\n\n'
        f"[runtime]\nshutdown_grace = 5\nmax_concurrent_turns = {PEOPLE}\n"
    )
    return config


async def start_bot(config: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as err:  # a file, not a pipe: a full pipe would stall the bot
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "botmem.cli",
            "run",
            "--config",
            str(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
            env={
                **os.environ,
                "TELEGRAM_BOT_TOKEN": "123456:TEST",
                "FAKE_EMBEDDING_KEY": "unused",
            },
        )


async def wait_running(bot: asyncio.subprocess.Process, log: Path) -> None:
    """Until the bot logs that it runs (its signal handlers are installed by then)."""
    deadline = time.monotonic() + START_TIMEOUT
    while "running on telegram" not in log.read_text():
        assert bot.returncode is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"not started: {log.read_text()[-3000:]}"
        await asyncio.sleep(0.1)


async def stop_bot(bot: asyncio.subprocess.Process, log: Path) -> None:
    if bot.returncode is None:
        bot.send_signal(signal.SIGTERM)
    await asyncio.wait_for(bot.wait(), 30)
    assert bot.returncode == 0, log.read_text()[-3000:]


def replies_per_chat(telegram: FakeTelegram) -> Counter[int]:
    return Counter(c.chat_id for c in telegram.of("sendMessage"))


def read_db(path: Path, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute(query, args))


@dataclass(frozen=True)
class AtKill:
    """The database as the killed process left it, next to what Telegram had received."""

    statuses: Counter[str]
    edited_not_replied: int
    """Turns whose memory edit was committed while the turn itself was still pending."""
    sent_not_marked: set[int]
    """Chats whose reply Telegram had while its inbox row was still 'replied'."""


def inspect_after_kill(db: Path, telegram_calls: list[Call]) -> AtKill:
    received = {c.chat_id for c in telegram_calls if c.method == "sendMessage"}
    rows = read_db(db, "SELECT id, agent_key, status FROM inbox")
    statuses = Counter(status for _, _, status in rows)
    edited = {
        key for (key,) in read_db(db, "SELECT agent_key FROM block_edits WHERE label = 'human'")
    }
    edited_not_replied = sum(1 for _, key, s in rows if s == "pending" and key in edited)
    sent_not_marked = {
        int(key.split(":")[1])
        for _, key, s in rows
        if s == "replied" and int(key.split(":")[1]) in received
    }
    return AtKill(statuses, edited_not_replied, sent_not_marked)


def check_history(db: Path) -> None:
    """Every turn: its message, one tool call with its result, one reply; nothing twice."""
    turns: dict[int, list[tuple[str, str | None, str, str | None]]] = {}
    rows = read_db(
        db, "SELECT turn_id, role, content, tool_calls, tool_call_id FROM messages ORDER BY id"
    )
    for turn_id, role, content, calls, call_id in rows:
        turns.setdefault(turn_id, []).append((role, content, calls, call_id))
    assert len(turns) == PEOPLE
    for turn_id, messages in turns.items():
        roles = [m[0] for m in messages]
        assert roles == ["user", "assistant", "tool", "assistant"], (turn_id, messages)
        assert "core_memory_append" in messages[1][2]
        assert messages[1][2].count('"id"') == 1  # one call ...
        assert messages[2][3] and messages[2][3] in messages[1][2]  # ... answered by its id
        assert (messages[2][1] or "").startswith("Block 'human' updated")


async def test_sigkill_with_100_turns_in_flight_loses_nothing_and_edits_once(
    tmp_path: Path,
) -> None:
    model = SlowModel(random.Random(1234))
    async with FakeOpenAIServer(model) as llm, FakeTelegram().running() as telegram:
        config = write_config(tmp_path, llm.base_url, telegram.base_url)
        db = tmp_path / "data" / "botmem.db"
        first_log, second_log = tmp_path / "bot1.log", tmp_path / "bot2.log"
        chats = list(range(FIRST_ID, FIRST_ID + PEOPLE))
        bot = await start_bot(config, first_log)
        try:
            for n, chat_id in enumerate(chats):
                who = user(chat_id, f"Person {n}")
                await telegram.push_update(message_update(chat_id, who, f"Remember token-{n}"))
            await telegram.wait_for("sendMessage", count=KILL_AFTER, timeout=START_TIMEOUT)
            bot.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            await asyncio.wait_for(bot.wait(), 10)
        finally:
            if bot.returncode is None:
                bot.kill()
                await bot.wait()
        assert bot.returncode == -signal.SIGKILL
        at_kill = inspect_after_kill(db, list(telegram.calls))
        sent_before = len(telegram.of("sendMessage"))
        requests_before = len(llm.requests)

        bot = await start_bot(config, second_log)
        try:
            await telegram.wait_until(
                lambda: set(replies_per_chat(telegram)) >= set(chats), DONE_TIMEOUT
            )
            recovered_in = time.monotonic() - killed_at
            await asyncio.sleep(1.0)  # room for a late duplicate to show up
        finally:
            await stop_bot(bot, second_log)

    per_chat = replies_per_chat(telegram)
    duplicates = {chat_id: n for chat_id, n in per_chat.items() if n > 1}
    print(
        f"\nkilled after {sent_before} replies ({requests_before} LLM requests); "
        f"inbox at kill {dict(at_kill.statuses)}; {at_kill.edited_not_replied} turns had "
        f"their edit applied but were unfinished; {len(at_kill.sent_not_marked)} replies were "
        f"at Telegram but not marked delivered; all {PEOPLE} answered {recovered_in:.1f} s "
        f"after the kill; {len(llm.requests) - requests_before} LLM requests after the "
        f"restart; duplicates {sorted(duplicates)}"
    )
    # The kill really caught turns in flight, at more than one stage.
    assert at_kill.statuses["pending"] > 0
    assert at_kill.edited_not_replied > 0

    # Every message answered with its own reply, no apology; duplicates only where the
    # design allows them (sent, not yet marked delivered at the kill), and at most one.
    for n, chat_id in enumerate(chats):
        assert set(telegram.texts(chat_id)) == {reply_of(n)}, telegram.texts(chat_id)
    assert BUG_REPLY not in telegram.texts()
    assert set(duplicates) <= at_kill.sent_not_marked
    assert all(n == 2 for n in duplicates.values())
    assert len(duplicates) == len(at_kill.sent_not_marked)  # replay does resend each of them

    # Every inbox row finished; each edit applied exactly once; history whole.
    assert read_db(db, "SELECT status, count(*) FROM inbox GROUP BY status") == [
        ("delivered", PEOPLE)
    ]
    for n, chat_id in enumerate(chats):
        (value,) = read_db(
            db,
            "SELECT b.value FROM blocks b JOIN agent_blocks a ON a.block_id = b.id "
            "WHERE a.agent_key = ? AND a.label = 'human'",
            f"telegram:{chat_id}",
        )[0]
        assert value.count(line_of(n)) == 1, value
        assert value.count("Likes the colour number") == 1, value
    edits = read_db(
        db, "SELECT agent_key, count(*) FROM block_edits WHERE label = 'human' GROUP BY 1"
    )
    assert sorted(edits) == sorted((f"telegram:{c}", 1) for c in chats)
    check_history(db)
    assert "replaying" in second_log.read_text()


class AckWatchingTelegram(FakeTelegram):
    """Calls `on_ack(offset)` when a getUpdates first confirms updates (offset > 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.on_ack: Any = None
        self.acked_below = 0

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        if offset > 1 and self.on_ack is not None:
            self.acked_below = offset
            self.on_ack(offset)
            self.on_ack = None
        return await super()._get_updates(params)


async def test_sigkill_right_after_telegram_updates_are_confirmed_loses_none(
    tmp_path: Path,
) -> None:
    model = SlowModel(random.Random(99))
    telegram = AckWatchingTelegram()
    async with FakeOpenAIServer(model) as llm, telegram.running():
        config = write_config(tmp_path, llm.base_url, telegram.base_url)
        db = tmp_path / "data" / "botmem.db"
        chats = list(range(FIRST_ID, FIRST_ID + PEOPLE))
        bot = await start_bot(config, tmp_path / "bot1.log")
        telegram.on_ack = lambda offset: os.kill(bot.pid, signal.SIGKILL)
        try:
            for n, chat_id in enumerate(chats):
                who = user(chat_id, f"Person {n}")
                await telegram.push_update(message_update(chat_id, who, f"Remember token-{n}"))
            await asyncio.wait_for(bot.wait(), START_TIMEOUT)
        finally:
            if bot.returncode is None:
                bot.kill()
                await bot.wait()
        stored = {int(key.split(":")[1]) for (key,) in read_db(db, "SELECT agent_key FROM inbox")}
        confirmed = telegram.acked_below - 1  # update ids 1..confirmed, one per chat in order
        print(
            f"\nkilled when Telegram updates 1..{confirmed} were confirmed: "
            f"{len(stored)} of them were in the inbox"
        )

        bot = await start_bot(config, tmp_path / "bot2.log")
        try:
            await wait_running(bot, tmp_path / "bot2.log")
            await telegram.wait_until(
                lambda: set(replies_per_chat(telegram)) >= stored, DONE_TIMEOUT
            )
            await asyncio.sleep(2.0)  # nothing else is coming: Telegram will not resend
        finally:
            await stop_bot(bot, tmp_path / "bot2.log")
    unanswered = set(chats) - set(replies_per_chat(telegram))
    print(f"never answered: {len(unanswered)} of {PEOPLE}")
    assert unanswered == set()
