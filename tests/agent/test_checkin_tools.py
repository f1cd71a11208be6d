"""The check-in tools through the real loop: what the model gets back, what is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from botmem.app import App
from botmem.events import InboundMessage
from botmem.stores.jobs import Job
from botmem.testing import FakeAdapter, FrozenClock, ScriptedLLM, call, reply
from tests.helpers import make_settings, open_app

START = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)  # a Saturday; 13:00 in Paris


@dataclass
class Rig:
    app: App
    llm: ScriptedLLM
    chat: FakeAdapter
    clock: FrozenClock

    async def tool(self, user: str, name: str, **arguments: Any) -> str:
        """The model calls one tool for `user`; returns the result it got back."""
        return await self.tool_in(self.chat.inbound(user, "please"), name, **arguments)

    async def tool_in(self, inbound: InboundMessage, name: str, **arguments: Any) -> str:
        self.llm.extend([call(name, **arguments), reply("ok")])
        assert await self.chat.deliver(inbound)
        result = self.llm.tool_requests[-1].messages[-1]
        assert result["role"] == "tool"
        return str(result["content"])

    async def plan(self, user: str, when: str, note: str = "ask how it went") -> str:
        return await self.tool(user, "schedule_checkin", when=when, note=note)

    async def jobs(self, user: str | None = None) -> list[Job]:
        return await self.app.stores.jobs.active(f"fake:{user}" if user else None)


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    marker = request.node.get_closest_marker("settings")
    settings = make_settings(**(marker.kwargs if marker else {}))
    llm = ScriptedLLM()
    clock = FrozenClock(START)
    app = await open_app(settings, llm, clock=clock)
    chat = FakeAdapter()
    await app.start([chat])
    yield Rig(app, llm, chat, clock)
    await app.stop()
    await app.aclose()


@pytest.mark.settings(agent={"timezone": "Europe/Paris"})
async def test_a_checkin_at_a_local_time_is_stored_with_its_note_and_conversation(
    rig: Rig,
) -> None:
    asked = replace(
        rig.chat.inbound("ann", "remind me tomorrow at 9"),
        channel_id="dm-ann",
        thread_id="t-7",
        user_name="Ann",
    )
    result = await rig.tool_in(
        asked, "schedule_checkin", when="2026-03-15T09:00", note="  ask about the interview "
    )
    (job,) = await rig.jobs("ann")
    assert result == f"Check-in {job.id} planned once, at 2026-03-15 09:00 (Europe/Paris)."
    assert (job.kind, job.timezone, job.status) == ("checkin", "Europe/Paris", "active")
    assert job.next_run_at == datetime(2026, 3, 15, 8, 0, tzinfo=UTC)  # CET is UTC+1
    assert job.payload["note"] == "ask about the interview"
    where = job.payload["conversation"]
    assert (where["source"], where["channel_id"], where["thread_id"]) == ("fake", "dm-ann", "t-7")
    assert (where["user_id"], where["user_name"], where["is_direct"]) == ("ann", "Ann", True)


@pytest.mark.settings(agent={"timezone": "Europe/Paris"})
async def test_a_crontab_repeats_in_local_time_across_the_dst_change(rig: Rig) -> None:
    result = await rig.plan("ann", "0 9 * * mon", "weekly review")
    (job,) = await rig.jobs("ann")
    assert result == f"Check-in {job.id} planned repeating (0 9 * * mon) (Europe/Paris)."
    assert job.trigger == "cron:0 9 * * mon"
    assert job.next_run_at == datetime(2026, 3, 16, 8, 0, tzinfo=UTC)  # Monday 9:00 CET
    rig.llm.responder = lambda _messages: reply("How was your week?")
    for following in (datetime(2026, 3, 23, 8, 0), datetime(2026, 3, 30, 7, 0)):  # CEST from 29/3
        rig.clock.now = job.next_run_at or START
        assert await rig.app.scheduler.run_due() == 1
        await rig.app.router.drain()
        fired = await rig.app.stores.jobs.get(job.id or 0)
        assert fired is not None and fired.status == "active"
        assert fired.next_run_at == following.replace(tzinfo=UTC)
        job = fired
    assert [m.text for m in rig.chat.sent[-2:]] == ["How was your week?"] * 2


@pytest.mark.settings(agent={"timezone": "Europe/Paris"})
async def test_numeric_weekdays_follow_crontab_where_0_is_sunday(rig: Rig) -> None:
    await rig.plan("ann", "0 9 * * 1", "weekly review")
    await rig.plan("bob", "0 9 * * 0", "sunday walk")
    (monday,) = await rig.jobs("ann")
    (sunday,) = await rig.jobs("bob")
    assert monday.next_run_at == datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
    assert sunday.next_run_at == datetime(2026, 3, 15, 8, 0, tzinfo=UTC)


@pytest.mark.settings(agent={"timezone": "Europe/Paris"})
async def test_the_agents_own_timezone_wins_over_the_default(rig: Rig) -> None:
    await rig.app.stores.agents.ensure("fake:ann")
    await rig.app.stores.agents.set_metadata("fake:ann", {"timezone": "Asia/Tokyo"})
    result = await rig.plan("ann", "2026-03-15T09:00")
    assert result.endswith("once, at 2026-03-15 09:00 (Asia/Tokyo).")
    (job,) = await rig.jobs("ann")
    assert job.timezone == "Asia/Tokyo"
    assert job.next_run_at == datetime(2026, 3, 15, 0, 0, tzinfo=UTC)  # JST is UTC+9


@pytest.mark.parametrize(
    ("when", "note", "error"),
    [
        ("tomorrow at 9", "x", "'tomorrow at 9' is not a time I understand: give an ISO 8601"),
        ("2026-03-14T11:59", "x", "is in the past (it is now 2026-03-14 12:00 there)"),
        ("0 9 * * funday", "x", "the crontab '0 9 * * funday' is not valid"),
        ("61 * * * *", "x", "the crontab '61 * * * *' is not valid"),
        ("0 0 30 2 *", "x", "the crontab '0 0 30 2 *' never fires"),
        ("2026-03-15T09:00", "   ", "note is empty"),
    ],
)
async def test_bad_input_is_an_error_for_the_model_and_plans_nothing(
    rig: Rig, when: str, note: str, error: str
) -> None:
    result = await rig.plan("ann", when, note)
    assert result.startswith("Error: ") and error in result
    assert await rig.jobs() == []


@pytest.mark.settings(checkins={"allowed_hours": "8-21", "quiet_hours": "12-14"})
async def test_times_outside_the_allowed_hours_or_inside_quiet_hours_are_refused(
    rig: Rig,
) -> None:
    for when in ("2026-03-15T07:59", "2026-03-15T21:00", "2026-03-15T12:30"):
        result = await rig.plan("ann", when)
        assert result.startswith("Error: check-ins may only be sent within the hours 8-21"), when
        assert "outside quiet hours 12-14" in result and "ask the person for another time" in result
    assert await rig.jobs() == []
    assert "planned once, at 2026-03-15 08:00" in await rig.plan("ann", "2026-03-15T08:00")
    assert "planned once, at 2026-03-15 14:00" in await rig.plan("ann", "2026-03-15T14:00")
    assert len(await rig.jobs("ann")) == 2


@pytest.mark.settings(checkins={"quiet_hours": "22-7"})
async def test_a_crontab_that_only_fires_in_quiet_hours_is_refused(rig: Rig) -> None:
    result = await rig.plan("ann", "0 3 * * *", "night owl check")
    assert result.startswith("Error: ") and "quiet hours 22-7" in result
    assert await rig.jobs() == []


@pytest.mark.settings(checkins={"enabled": False})
async def test_checkins_switched_off_are_refused(rig: Rig) -> None:
    result = await rig.plan("ann", "2026-03-15T09:00")
    assert result == "Error: check-ins are switched off on this bot; tell the person"
    assert await rig.jobs() == []


async def test_the_default_policy_allows_a_checkin_at_3_am(rig: Rig) -> None:
    result = await rig.plan("ann", "2026-03-15T03:00", "wake up for the eclipse")
    assert "planned once, at 2026-03-15 03:00 (UTC)" in result
    (job,) = await rig.jobs("ann")
    assert job.next_run_at == datetime(2026, 3, 15, 3, 0, tzinfo=UTC)


async def test_list_checkins_shows_only_this_agents_checkins(rig: Rig) -> None:
    assert await rig.tool("ann", "list_checkins") == "No check-ins planned."
    await rig.plan("ann", "2026-03-15T09:00", "ask about the interview")
    await rig.plan("bob", "2026-03-15T10:00", "bob's secret plan")
    await rig.plan("ann", "0 18 * * fri", "weekend plans?")
    ann_first, ann_second = await rig.jobs("ann")
    listing = await rig.tool("ann", "list_checkins")
    assert listing.splitlines() == [
        f"{ann_first.id}: once, at 2026-03-15 09:00 (UTC): ask about the interview",
        f"{ann_second.id}: repeating (0 18 * * fri) (UTC): weekend plans?",
    ]
    assert "bob" not in listing


async def test_cancel_checkin_cancels_its_own_and_refuses_others(rig: Rig) -> None:
    await rig.plan("ann", "2026-03-15T09:00")
    await rig.plan("bob", "2026-03-15T10:00")
    (ann_job,) = await rig.jobs("ann")
    (bob_job,) = await rig.jobs("bob")
    for other in (bob_job.id, 999):
        refused = await rig.tool("ann", "cancel_checkin", checkin_id=other)
        assert refused == f"Error: there is no planned check-in {other}; see list_checkins"
    assert await rig.jobs("bob") == [bob_job]

    done = await rig.tool("ann", "cancel_checkin", checkin_id=ann_job.id)
    assert done == f"Check-in {ann_job.id} cancelled."
    stored = await rig.app.stores.jobs.get(ann_job.id or 0)
    assert stored is not None and stored.status == "cancelled"
    again = await rig.tool("ann", "cancel_checkin", checkin_id=ann_job.id)
    assert again.startswith("Error: there is no planned check-in")
    assert await rig.tool("ann", "list_checkins") == "No check-ins planned."
