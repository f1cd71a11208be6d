"""Several Apps on one database, as separate processes would be: a gateway and workers.

Turns are claimed from the shared inbox; one agent is never run by two workers at once; the
gateway sends every reply once, in order; one worker leads the scheduler at a time.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botmem.app import App
from botmem.llm.base import Completion
from botmem.stores.jobs import Job
from botmem.stores.sql import open_sql_stores
from botmem.testing import ScriptedLLM
from botmem.testing.embeddings import HashEmbedder
from botmem.testing.fake_adapter import FakeAdapter
from tests.helpers import make_settings

AGENT = re.compile(r"agent-\d+")


@dataclass
class TrackingLLM(ScriptedLLM):
    """Answers every message after a short wait, and counts overlapping calls per agent."""

    delay: float = 0.02
    in_flight: Counter[str] = field(default_factory=Counter)
    overlaps: list[str] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        max_tokens: int | None = None,
    ) -> Completion:
        if tools is None:
            return await super().complete(messages, tools, max_tokens=max_tokens)
        last = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        agent = AGENT.search(last)
        key = agent.group(0) if agent else "?"
        self.in_flight[key] += 1
        if self.in_flight[key] > 1:
            self.overlaps.append(key)
        self.calls[key] += 1
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight[key] -= 1
        return Completion(text=f"re: {last}")


def settings() -> Any:
    return make_settings(
        workers={"lease_seconds": 2, "poll_interval": 0.05},
        limits={"messages_per_minute": 0},
        summarization={"idle_minutes": 0},
    )


@asynccontextmanager
async def app_on(url: str, llm: ScriptedLLM) -> AsyncIterator[App]:
    stores = await open_sql_stores(url)
    async with await App.open(settings(), llm=llm, stores=stores, embedder=HashEmbedder()) as app:
        yield app


async def wait_until(check: Any, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_workers_share_the_turns_and_the_gateway_sends_each_reply_once(
    shared_url: str,
) -> None:
    llm = TrackingLLM()
    platform = FakeAdapter("fake")
    async with (
        app_on(shared_url, llm) as gateway,
        app_on(shared_url, llm) as first,
        app_on(shared_url, llm) as second,
    ):
        await gateway.start_shared([platform], turns=False)
        await first.start_shared([], turns=True)
        await second.start_shared([], turns=True)
        sent = []
        for n in range(5):
            for a in range(8):
                inbound = platform.inbound(f"u{a}", f"agent-{a} message {n}")
                sent.append(inbound)
                assert await gateway.handle(inbound) is None  # stored, claimed elsewhere
        await wait_until(lambda: len(platform.sent) >= len(sent))
        await asyncio.sleep(0.3)  # nothing more arrives
        for app in (gateway, first, second):
            await app.shutdown(grace=5)

    assert len(platform.sent) == len(sent)
    assert sorted(m.inbox_id or 0 for m in platform.sent) == sorted(
        set(m.inbox_id or 0 for m in platform.sent)
    )
    for a in range(8):
        replies = [m.text for m in platform.sent if m.agent_key == f"fake:u{a}"]
        assert replies == [f"re: agent-{a} message {n}" for n in range(5)]  # in order
    assert llm.overlaps == []
    assert sum(llm.calls.values()) == len(sent)


async def test_a_duplicate_stored_by_another_gateway_is_answered_once(shared_url: str) -> None:
    llm = TrackingLLM()
    one, two = FakeAdapter("fake"), FakeAdapter("fake")
    async with (
        app_on(shared_url, llm) as gateway_a,
        app_on(shared_url, llm) as gateway_b,
        app_on(shared_url, llm) as worker,
    ):
        await gateway_a.start_shared([one], turns=False)
        await gateway_b.start_shared([two], turns=False)
        await worker.start_shared([], turns=True)
        inbound = one.inbound("u1", "agent-1 hello", message_id="m-1")
        await gateway_a.handle(inbound)
        await gateway_b.handle(inbound)  # a re-delivery to the other gateway
        await wait_until(lambda: len(one.sent) + len(two.sent) >= 1)
        await asyncio.sleep(0.5)
        for app in (gateway_a, gateway_b, worker):
            await app.shutdown(grace=5)
    assert [m.text for m in one.sent + two.sent] == ["re: agent-1 hello"]
    assert llm.calls["agent-1"] == 1


async def test_one_worker_leads_and_another_takes_over_when_it_stops(shared_url: str) -> None:
    llm = TrackingLLM()
    async with app_on(shared_url, llm) as first, app_on(shared_url, llm) as second:
        await first.start_shared([], turns=True)
        await wait_until(lambda: leading(first))
        await second.start_shared([], turns=True)
        await asyncio.sleep(0.3)
        assert not leading(second)
        await first.shutdown(grace=1)  # gives the lease back
        await wait_until(lambda: leading(second), timeout=5)
        await second.shutdown(grace=1)


async def test_a_job_added_by_any_worker_fires_once_in_the_leader(shared_url: str) -> None:
    llm = TrackingLLM()
    platform = FakeAdapter("fake")
    async with (
        app_on(shared_url, llm) as gateway,
        app_on(shared_url, llm) as first,
        app_on(shared_url, llm) as second,
    ):
        await gateway.start_shared([platform], turns=False)
        await first.start_shared([], turns=True)
        await wait_until(lambda: leading(first))
        await second.start_shared([], turns=True)
        due = datetime.now(UTC) + timedelta(seconds=1)
        conversation = {"source": "fake", "user_id": "u3", "is_direct": True}
        job = Job(
            "fake:u3",
            "checkin",
            f"at:{due.isoformat()}",
            "UTC",
            due,
            {"note": "agent-3 ask about the trip", "conversation": conversation},
        )
        await second.scheduler.add(job)  # not the leader: stored only
        await wait_until(lambda: len(platform.sent) >= 1, timeout=10)
        await asyncio.sleep(1.5)
        for app in (gateway, first, second):
            await app.shutdown(grace=5)
    assert len(platform.sent) == 1
    assert "agent-3 ask about the trip" in platform.sent[0].text
    assert llm.calls["agent-3"] == 1


def leading(app: App) -> bool:
    shared = app._shared
    return shared is not None and shared[2] is not None and shared[2].leading
