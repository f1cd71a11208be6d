"""In-chat commands about time: check-ins, the person's timezone, consolidation history/undo."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from botmem.stores.jobs import Job
from botmem.testing import FakeAdapter, FrozenClock, ScriptedLLM, call, reply
from tests.helpers import make_settings, open_app
from tests.test_commands import ADMIN, Bot, command, run

REFUSED = "Sorry, only the bot's admins can do that."
START = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


@pytest.fixture
async def bot() -> AsyncIterator[Bot]:
    settings = make_settings(
        telegram={"admins": [f"telegram:{ADMIN}"]}, agent={"timezone": "America/New_York"}
    )
    llm = ScriptedLLM()
    app = await open_app(settings, llm, clock=FrozenClock(START))
    chat = FakeAdapter("telegram")
    await app.start([chat])
    yield Bot(app, chat, llm)
    await app.stop()
    await app.aclose()


async def plan(bot: Bot, user: str, when: str, note: str) -> Job:
    """The user asks, the agent schedules a check-in; returns the job it planned."""
    before = {job.id for job in await bot.app.stores.jobs.active()}
    bot.llm.extend([call("schedule_checkin", when=when, note=note), reply("Planned.")])
    assert await bot.chat.say(user, "remind me, please") == "Planned."
    (job,) = [job for job in await bot.app.stores.jobs.active() if job.id not in before]
    return job


async def status(bot: Bot, job: Job) -> str:
    stored = await bot.app.stores.jobs.get(job.id or 0)
    assert stored is not None
    return stored.status


async def test_checkins_lists_only_the_users_own(bot: Bot) -> None:
    assert (await run(bot.chat, command("5", "checkins"))).text == "No check-ins planned."
    mine = await plan(bot, "5", "2026-03-15T09:00", "ask about the interview")
    weekly = await plan(bot, "5", "0 18 * * fri", "weekend plans?")
    await plan(bot, "6", "2026-03-15T10:00", "user six's dentist")
    listing = (await run(bot.chat, command("5", "checkins"))).text
    assert listing.splitlines() == [
        "Your check-ins (cancel with: checkins cancel ID):",
        f"{mine.id}: once, at 2026-03-15 09:00 (America/New_York): ask about the interview",
        f"{weekly.id}: repeating (0 18 * * fri) (America/New_York): weekend plans?",
    ]


async def test_checkins_cancel_cancels_only_the_users_own(bot: Bot) -> None:
    mine = await plan(bot, "5", "2026-03-15T09:00", "ask about the interview")
    theirs = await plan(bot, "6", "2026-03-15T10:00", "dentist")
    refused = (await run(bot.chat, command("5", f"checkins cancel {theirs.id}"))).text
    assert refused == f"There is no check-in {theirs.id} of yours to cancel."
    assert await status(bot, theirs) == "active"
    done = (await run(bot.chat, command("5", f"checkins cancel {mine.id}"))).text
    assert done == f"Check-in {mine.id} cancelled."
    assert await status(bot, mine) == "cancelled"
    assert (await run(bot.chat, command("5", "checkins"))).text == "No check-ins planned."
    usage = (await run(bot.chat, command("5", "checkins cancel soon"))).text
    assert usage.startswith("Usage: checkins | checkins cancel ID")


async def test_checkins_all_is_for_admins_and_shows_the_owners(bot: Bot) -> None:
    five = await plan(bot, "5", "2026-03-15T09:00", "ask about the interview")
    six = await plan(bot, "6", "2026-03-15T10:00", "dentist")
    assert (await run(bot.chat, command("5", "checkins all"))).text == REFUSED
    listing = (await run(bot.chat, command(ADMIN, "checkins all"))).text.splitlines()
    assert listing[0] == "Check-ins of every agent (cancel with: checkins cancel ID):"
    assert listing[1].startswith(f"{five.id}: once") and listing[1].endswith("[telegram:5]")
    assert listing[2].startswith(f"{six.id}: once") and listing[2].endswith("[telegram:6]")
    cancelled = (await run(bot.chat, command(ADMIN, f"checkins cancel {six.id}"))).text
    assert cancelled == f"Check-in {six.id} cancelled."  # admins may cancel anyone's
    assert await status(bot, six) == "cancelled" and await status(bot, five) == "active"


async def test_checkins_all_stays_within_the_admins_platform(bot: Bot) -> None:
    tz = ZoneInfo("UTC")
    elsewhere = await bot.app.scheduler.plan_checkin(
        "discord:guild:9:user:7", "2026-03-15T09:00", "ask about the divorce", tz, {}
    )
    listing = (await run(bot.chat, command(ADMIN, "checkins all"))).text
    assert "divorce" not in listing and "discord:" not in listing
    await run(bot.chat, command(ADMIN, f"checkins cancel {elsewhere.id}"))
    assert await status(bot, elsewhere) == "active"


async def test_timezone_shows_the_default_and_sets_the_users_own(bot: Bot) -> None:
    shown = (await run(bot.chat, command("5", "timezone"))).text
    assert shown == "Your timezone is America/New_York. Change it with: timezone Area/City"
    changed = (await run(bot.chat, command("5", "timezone Europe/Paris"))).text
    assert changed == "Your timezone is now Europe/Paris (it was America/New_York)."
    assert (await run(bot.chat, command("5", "timezone"))).text.startswith(
        "Your timezone is Europe/Paris."
    )
    job = await plan(bot, "5", "2026-03-15T09:00", "ask about the interview")
    assert job.timezone == "Europe/Paris"
    assert job.next_run_at == datetime(2026, 3, 15, 8, 0, tzinfo=UTC)
    other = await plan(bot, "6", "2026-03-15T09:00", "dentist")  # others keep the default
    assert other.timezone == "America/New_York"
    assert other.next_run_at == datetime(2026, 3, 15, 13, 0, tzinfo=UTC)  # EDT is UTC-4


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd"])
async def test_an_unknown_timezone_is_refused_and_nothing_changes(bot: Bot, zone: str) -> None:
    answer = (await run(bot.chat, command("5", f"timezone {zone}"))).text
    assert answer == f"{zone!r} is not a timezone I know; try e.g. Europe/Paris"
    assert (await run(bot.chat, command("5", "timezone"))).text.startswith(
        "Your timezone is America/New_York."
    )
    usage = (await run(bot.chat, command("5", "timezone Europe Paris"))).text
    assert usage.startswith("Usage: timezone Area/City")


async def consolidate(bot: Bot, user: str, new_memory: str) -> str:
    """A consolidation pass that rewrites the human block; returns its run id from `history`."""
    bot.llm.extend([call("memory_rethink", label="human", new_memory=new_memory), reply("Done.")])
    await bot.app.maintenance.consolidate(f"telegram:{user}", "test")
    history = (await run(bot.chat, command(ADMIN, f"history {user}"))).text.splitlines()
    assert history[0] == f"Consolidations of telegram:{user}'s memory (undo with: undo RUN):"
    assert history[1].endswith(": changed human")
    return history[1].split()[0]


async def human(bot: Bot, user: str) -> str:
    block = await bot.app.stores.blocks.get(f"telegram:{user}", "human")
    assert block is not None
    return block.value


async def test_admins_see_the_consolidation_history_and_undo_a_run(bot: Bot) -> None:
    bot.llm.extend([call("core_memory_append", label="human", content="Likes tea"), reply("Ok")])
    await bot.chat.say("5", "I like tea")
    before = await human(bot, "5")
    none_yet = (await run(bot.chat, command(ADMIN, "history 5"))).text
    assert none_yet == "No consolidation of telegram:5's memory yet."
    run_id = await consolidate(bot, "5", "Likes tea.")
    assert await human(bot, "5") == "Likes tea."

    undone = (await run(bot.chat, command(ADMIN, f"undo {run_id} 5"))).text
    assert undone == f"Undone: human restored as before {run_id}."
    assert await human(bot, "5") == before
    unknown = (await run(bot.chat, command(ADMIN, "undo nosuchrun 5"))).text
    assert unknown == (
        "Consolidation nosuchrun changed nothing I can undo (unknown, or undone already)."
    )


async def test_undoing_a_run_twice_says_it_was_already_undone(bot: Bot) -> None:
    bot.llm.extend([call("core_memory_append", label="human", content="Likes tea"), reply("Ok")])
    await bot.chat.say("5", "I like tea")
    run_id = await consolidate(bot, "5", "Likes tea.")
    await run(bot.chat, command(ADMIN, f"undo {run_id} 5"))
    bot.llm.extend([call("memory_rethink", label="human", new_memory="Likes coffee"), reply("Ok")])
    await bot.chat.say("5", "actually, coffee")
    again = (await run(bot.chat, command(ADMIN, f"undo {run_id} 5"))).text
    assert await human(bot, "5") == "Likes coffee"  # the later edit is kept
    assert not again.startswith("Undone")


async def test_history_and_undo_are_refused_to_non_admins(bot: Bot) -> None:
    bot.llm.extend([call("core_memory_append", label="human", content="Likes tea"), reply("Ok")])
    await bot.chat.say("5", "I like tea")
    run_id = await consolidate(bot, "5", "Likes tea.")
    for text in ("history", "history 5", f"undo {run_id}", f"undo {run_id} 5"):
        assert (await run(bot.chat, command("5", text))).text == REFUSED, text
    assert await human(bot, "5") == "Likes tea."  # not undone


async def test_help_lists_the_schedule_commands(bot: Bot) -> None:
    usage = (await run(bot.chat, command("5", "help"))).text
    for line in (
        "checkins             the check-ins I planned with you; checkins cancel ID",
        "timezone [Area/City] your timezone",
        "checkins all         every planned check-in",
        "history [AGENT]      consolidations of an agent's memory",
        "undo RUN [AGENT]     restore the blocks a consolidation changed",
    ):
        assert line in usage, line
