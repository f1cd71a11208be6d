"""The scheduler: check-ins fire once, on botmem's clock, within the policy, across restarts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from botmem.agent.loop import CHECKIN_DOWN_REPLY
from botmem.app import App, utc_now
from botmem.errors import LLMError, ToolError
from botmem.stores.jobs import Job
from botmem.stores.memory_vectors import MemoryVectorIndex
from botmem.stores.sql import open_sql_stores
from botmem.testing import FakeAdapter, FrozenClock, ScriptedLLM, reply
from botmem.testing.embeddings import HashEmbedder
from tests.helpers import make_settings, open_app

PARIS = ZoneInfo("Europe/Paris")
START = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)  # 13:00 in Paris
AGENT = "fake:alice"
WHERE = {"source": "fake", "channel_id": "dm-alice", "user_id": "alice", "is_direct": True}


def wake_up_replies(messages: list[dict[str, Any]]) -> Any:
    """The agent answers every wake-up by quoting the note it was woken with."""
    return reply("Hello! " + str(messages[-1]["content"])[-60:])


@dataclass
class Rig:
    app: App
    adapter: FakeAdapter
    clock: FrozenClock
    llm: ScriptedLLM

    async def plan(self, when: str, note: str = "ask how the interview went") -> Job:
        return await self.app.scheduler.plan_checkin(AGENT, when, note, PARIS, WHERE)

    async def tick(self, **advance: float) -> int:
        """Move the clock, run what came due and wait for the turns it started."""
        self.clock.advance(**advance)
        fired = await self.app.scheduler.run_due()
        await self.app.router.drain()
        return fired


async def start(app: App, clock: FrozenClock, llm: ScriptedLLM) -> Rig:
    adapter = FakeAdapter()
    await app.start([adapter])
    await app.router.drain()  # what start-up caught up on
    return Rig(app, adapter, clock, llm)


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    marker = request.node.get_closest_marker("settings")
    settings = make_settings(**(marker.kwargs if marker else {}))
    clock = FrozenClock(START)
    llm = ScriptedLLM(responder=wake_up_replies)
    app = await open_app(settings, llm, clock=clock)
    rig = await start(app, clock, llm)
    yield rig
    await app.stop()
    await app.aclose()


async def test_a_checkin_fires_once_when_its_time_comes(rig: Rig) -> None:
    job = await rig.plan("2026-03-15T09:00")
    assert job.next_run_at == datetime(2026, 3, 15, 8, 0, tzinfo=UTC)
    assert await rig.tick(hours=19) == 0 and rig.adapter.sent == []  # 8:00 in Paris: not yet

    assert await rig.tick(hours=1) == 1
    (sent,) = rig.adapter.sent
    assert (sent.source, sent.channel_id, sent.user_id) == ("fake", "dm-alice", "alice")
    assert sent.reply_to == ""  # nobody wrote: nothing to answer
    assert "ask how the interview went" in sent.text
    woken = rig.llm.tool_requests[-1].messages[-1]["content"]
    assert woken.startswith("[Scheduled wake-up, not a message from the person]")
    assert "bot was offline" not in woken
    stored = await rig.app.stores.jobs.get(job.id or 0)
    assert stored is not None and stored.status == "done"
    assert await rig.tick(days=1) == 0 and len(rig.adapter.sent) == 1


async def test_a_repeating_checkin_moves_to_its_next_time(rig: Rig) -> None:
    job = await rig.plan("0 9 * * *", "morning check-in")
    assert job.id is not None and job.next_run_at == datetime(2026, 3, 15, 8, 0, tzinfo=UTC)
    assert await rig.tick(hours=20) == 1
    after = await rig.app.stores.jobs.get(job.id)
    assert after is not None and after.status == "active"
    assert after.next_run_at == datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
    assert await rig.tick(days=1) == 1 and len(rig.adapter.sent) == 2


async def test_downtime_gives_a_repeating_checkin_one_catch_up_run(rig: Rig) -> None:
    job = await rig.plan("0 9 * * *", "morning check-in")
    assert job.id is not None
    assert await rig.tick(hours=20 + 72) == 1  # three days missed: one run, not three
    assert len(rig.adapter.sent) == 1
    after = await rig.app.stores.jobs.get(job.id)
    assert after is not None and after.next_run_at is not None
    assert after.next_run_at > rig.clock.now


async def test_a_checkin_a_few_hours_late_is_sent_saying_so(rig: Rig) -> None:
    await rig.plan("2026-03-14T15:00")
    assert await rig.tick(hours=5) == 1  # due at 14:00 UTC, now 17:00
    woken = rig.llm.tool_requests[-1].messages[-1]["content"]
    assert "It was due at 2026-03-14 15:00, 3.0 h ago: the bot was offline" in woken
    assert len(rig.adapter.sent) == 1


async def test_a_checkin_later_than_max_delay_is_skipped_and_logged(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    job = await rig.plan("2026-03-14T15:00")
    with caplog.at_level(logging.WARNING, logger="botmem.scheduler"):
        assert await rig.tick(hours=2 + 13) == 1
    assert rig.adapter.sent == []
    assert f"check-in {job.id} for {AGENT} skipped: missed by 13.0 h" in caplog.text
    stored = await rig.app.stores.jobs.get(job.id or 0)
    assert stored is not None and stored.status == "done"


@pytest.mark.settings(checkins={"quiet_hours": "22-7"})
async def test_quiet_hours_skip_a_repeating_checkin(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    job = await rig.plan("30 9,22 * * *", "twice a day")  # each run is checked when due
    with caplog.at_level(logging.WARNING, logger="botmem.scheduler"):
        assert await rig.tick(hours=9, minutes=30) == 1
    assert rig.adapter.sent == []
    assert "outside the allowed hours" in caplog.text
    assert await rig.app.stores.jobs.runs_since(AGENT, "checkin", START) == 0
    after = await rig.app.stores.jobs.get(job.id or 0)
    assert after is not None and after.status == "active"  # tomorrow it is tried again


@pytest.mark.settings(checkins={"max_per_day": 2})
async def test_max_per_day_caps_the_checkins_of_an_agent(rig: Rig) -> None:
    await rig.plan("0 * * * *", "hourly")
    sent = [await rig.tick(hours=1) for _ in range(4)]
    assert sent == [1, 1, 1, 1]  # due four times...
    assert len(rig.adapter.sent) == 2  # ...sent twice
    assert await rig.app.stores.jobs.runs_since(AGENT, "checkin", START) == 2


async def test_a_checkin_while_the_model_is_down_says_so_plainly(rig: Rig) -> None:
    await rig.plan("2026-03-14T14:00")
    rig.llm.extend([LLMError("model down")] * 10)
    assert await rig.tick(hours=2) == 1
    assert [m.text for m in rig.adapter.sent] == [CHECKIN_DOWN_REPLY]


async def test_an_oversize_note_is_refused(rig: Rig) -> None:
    with pytest.raises(ToolError, match="note is 5,000 characters; keep it under 2,000"):
        await rig.plan("2026-03-14T14:00", "x" * 5000)
    assert await rig.app.stores.jobs.active() == []


async def test_a_cancelled_checkin_never_fires(rig: Rig) -> None:
    job = await rig.plan("2026-03-14T14:00")
    assert job.id is not None and await rig.app.scheduler.cancel_checkin(AGENT, job.id)
    assert await rig.tick(hours=2) == 0 and rig.adapter.sent == []


async def test_wiping_an_agent_removes_its_checkins(rig: Rig) -> None:
    await rig.adapter.say("alice", "hi")  # the agent exists
    await rig.plan("2026-03-14T14:00")
    await rig.app.router.wipe(AGENT)
    assert await rig.app.stores.jobs.active(AGENT) == []
    before = len(rig.adapter.sent)
    assert await rig.tick(hours=2) == 0 and len(rig.adapter.sent) == before


async def test_the_real_timer_fires_a_checkin() -> None:
    """APScheduler itself (wall clock, no FrozenClock): a check-in two seconds away."""
    llm = ScriptedLLM(responder=wake_up_replies)
    app = await open_app(make_settings(), llm, clock=utc_now)
    adapter = FakeAdapter()
    await app.start([adapter])
    try:
        when = (utc_now() + timedelta(seconds=2)).astimezone(PARIS).isoformat()
        await app.scheduler.plan_checkin(AGENT, when, "the timer works", PARIS, WHERE)
        for _ in range(100):
            if adapter.sent:
                break
            await asyncio.sleep(0.1)
        assert [m.channel_id for m in adapter.sent] == ["dm-alice"]
        assert "the timer works" in adapter.sent[0].text
    finally:
        await app.stop()
        await app.aclose()


# --- restarts, on SQLite on disk -------------------------------------------------------------


async def open_on_disk(path: Path, clock: FrozenClock, llm: ScriptedLLM) -> Rig:
    url = f"sqlite:///{path / 'botmem.db'}"
    stores = await open_sql_stores(url, clock, MemoryVectorIndex())
    app = await App.open(
        make_settings(), llm=llm, embedder=HashEmbedder(), stores=stores, clock=clock
    )
    return await start(app, clock, llm)


async def close(rig: Rig) -> None:
    await rig.app.stop()
    await rig.app.aclose()


async def test_a_restart_in_the_middle_of_a_schedule_still_fires_once(tmp_path: Path) -> None:
    clock = FrozenClock(START)
    llm = ScriptedLLM(responder=wake_up_replies)
    first = await open_on_disk(tmp_path, clock, llm)
    await first.plan("2026-03-14T15:00")
    await close(first)

    clock.advance(hours=3)  # the bot was down when the check-in came due
    second = await open_on_disk(tmp_path, clock, llm)
    assert len(second.adapter.sent) == 1  # caught up at start
    assert await second.tick(hours=1) == 0
    await close(second)

    third = await open_on_disk(tmp_path, clock, llm)
    assert third.adapter.sent == []
    await close(third)


async def test_a_crash_after_waking_the_agent_gives_one_reply(tmp_path: Path) -> None:
    """Killed after the wake-up was stored, before the run was recorded: the restart
    fires the job again, and the inbox drops the duplicate wake-up."""
    clock = FrozenClock(START)
    llm = ScriptedLLM(responder=wake_up_replies)
    first = await open_on_disk(tmp_path, clock, llm)
    job = await first.plan("2026-03-14T14:00")

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed")

    first.app.stores.jobs.fired = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="killed"):
        await first.tick(hours=2)
    await first.app.router.drain()
    assert len(first.adapter.sent) == 1
    await close(first)

    second = await open_on_disk(tmp_path, clock, llm)
    assert second.adapter.sent == []
    stored = await second.app.stores.jobs.get(job.id or 0)
    assert stored is not None and stored.status == "done"
    await close(second)
