"""A worker outlives a failing database, and leaves replies for the gateway quietly."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from botmem import workers
from botmem.testing.fake_adapter import FakeAdapter
from tests.scale.test_shared_inbox import TrackingLLM, app_on, wait_until


async def test_a_worker_keeps_claiming_after_looking_for_work_failed(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(workers, "RETRY_STUCK_AFTER", 0.2)
    llm = TrackingLLM()
    platform = FakeAdapter("fake")
    async with app_on(pg_url, llm) as gateway, app_on(pg_url, llm) as worker:
        real = worker.stores.inbox.claimable
        failures = []

        async def broken_once(**kwargs: Any) -> Any:
            if not failures:
                failures.append(1)
                raise RuntimeError("a bug in the query")
            return await real(**kwargs)

        monkeypatch.setattr(worker.stores.inbox, "claimable", broken_once)
        await gateway.start_shared([platform], turns=False)
        await worker.start_shared([], turns=True)
        await gateway.handle(platform.inbound("u1", "agent-1 hello"))
        await wait_until(lambda: len(platform.sent) >= 1, timeout=10)
        for app in (gateway, worker):
            await app.shutdown(grace=5)
    assert [m.text for m in platform.sent] == ["re: agent-1 hello"]
    assert failures == [1]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "looking for work failed: RuntimeError('a bug in the query')"
    ]


async def test_a_worker_leaves_replies_to_the_gateway_without_logging_errors(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    llm = TrackingLLM()
    platform = FakeAdapter("fake")
    async with app_on(pg_url, llm) as gateway, app_on(pg_url, llm) as worker:
        await gateway.start_shared([platform], turns=False)
        await worker.start_shared([], turns=True)
        for n in range(3):
            await gateway.handle(platform.inbound(f"u{n}", f"agent-{n} hi"))
        await wait_until(lambda: len(platform.sent) >= 3, timeout=10)
        await asyncio.sleep(0.2)
        for app in (gateway, worker):
            await app.shutdown(grace=5)
    assert sorted(m.text for m in platform.sent) == [f"re: agent-{n} hi" for n in range(3)]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
