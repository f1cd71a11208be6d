"""Store contract: steps (prompt sizes per LLM call) and messages per day. Runs on every
backend, plus migration 5 on a database created at version 4."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from sqlalchemy import inspect

from botmem.stores.base import Stores
from botmem.stores.sql.engine import Conn, open_database
from botmem.stores.sql.migration_1 import metadata_v1
from botmem.stores.sql.migrations import migrate
from botmem.stores.steps import StepRecord
from botmem.types import Message
from tests.stores.conftest import Backend

T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
TOKYO = timezone(timedelta(hours=9))


def step(agent: str = "a", turn: int = 1, n: int = 0, *, summarized: bool = False) -> StepRecord:
    return StepRecord(agent, turn, T0 + timedelta(minutes=n), 100 + n, n, summarized)


def message(role: str, at: datetime, agent: str = "a") -> Message:
    return Message(agent, role, "hello", at, turn_id=1)  # type: ignore[arg-type]


async def test_steps_come_back_oldest_first_per_agent(stores: Stores) -> None:
    recorded = [step(n=0), step("b", n=1), step(turn=2, n=2, summarized=True), step(turn=2, n=3)]
    for item in recorded:
        await stores.steps.record(item)
    assert await stores.steps.for_agent("a") == [recorded[0], recorded[2], recorded[3]]
    assert await stores.steps.for_agent("b") == [recorded[1]]
    assert await stores.steps.for_agent("nobody") == []


async def test_times_come_back_in_utc(stores: Stores) -> None:
    at = datetime(2024, 6, 1, 17, 30, tzinfo=TOKYO)
    await stores.steps.record(StepRecord("a", 1, at, 10, 2))
    (found,) = await stores.steps.for_agent("a")
    assert found.created_at == at and found.created_at.utcoffset() == timedelta(0)


async def test_limit_keeps_the_last_steps(stores: Stores) -> None:
    for n in range(7):
        await stores.steps.record(step(n=n))
    last = await stores.steps.for_agent("a", limit=3)
    assert [s.prompt_tokens for s in last] == [104, 105, 106]
    assert len(await stores.steps.for_agent("a", limit=500)) == 7
    assert await stores.steps.for_agent("a", limit=0) == []
    assert await stores.steps.for_agent("a", limit=-1) == []


async def test_delete_agent_and_wipe_remove_only_that_agents_steps(stores: Stores) -> None:
    for agent in ("a", "b", "c"):
        await stores.steps.record(step(agent))
    await stores.steps.delete_agent("a")
    await stores.wipe_agent("b")
    assert await stores.steps.for_agent("a") == []
    assert await stores.steps.for_agent("b") == []
    assert await stores.steps.for_agent("c") == [step("c")]


async def test_reopening_keeps_steps(backend: Backend) -> None:
    first = await backend.open()
    await first.steps.record(step(summarized=True))
    await first.aclose()
    second = await backend.open()
    try:
        assert await second.steps.for_agent("a") == [step(summarized=True)]
    finally:
        await second.aclose()


async def test_per_day_counts_what_was_said_by_utc_day(stores: Stores) -> None:
    late_on_the_1st = datetime(2024, 6, 2, 8, 59, tzinfo=TOKYO)  # 23:59 UTC on June 1st
    await stores.history.append(
        [
            message("user", T0 - timedelta(days=2)),  # before `since`
            message("user", T0),
            message("assistant", T0 + timedelta(hours=1), agent="b"),
            message("tool", T0 + timedelta(hours=1)),  # tool traffic is not counted
            message("user", late_on_the_1st),
            message("assistant", T0 + timedelta(days=2)),  # June 2nd has none: left out
            message("system", T0 + timedelta(days=2)),
        ]
    )
    assert await stores.history.per_day(T0) == [(date(2024, 6, 1), 3), (date(2024, 6, 3), 1)]
    since = datetime(2024, 6, 1, 18, 30, tzinfo=TOKYO)  # 09:30 UTC: after the first two
    assert await stores.history.per_day(since) == [(date(2024, 6, 1), 1), (date(2024, 6, 3), 1)]
    assert await stores.history.per_day(T0 + timedelta(days=3)) == []


async def test_per_day_forgets_wiped_agents(stores: Stores) -> None:
    await stores.history.append([message("user", T0), message("user", T0, agent="b")])
    await stores.wipe_agent("b")
    assert await stores.history.per_day(T0 - timedelta(days=1)) == [(date(2024, 6, 1), 1)]


# --- migration 5 ----------------------------------------------------------------------


async def test_migration_5_keeps_messages_and_adds_steps(sql_backend: Backend) -> None:
    assert sql_backend.url is not None
    db = open_database(sql_backend.url)
    row = {"agent_key": "a", "role": "user", "content": "hi", "tool_calls": [], "tokens": 0}

    async def fill(conn: Conn) -> None:
        await conn.execute(metadata_v1.tables["messages"].insert(), [row | {"created_at": T0}])

    try:
        assert await migrate(db, until=4) == [1, 2, 3, 4]
        await db.write(fill)
    finally:
        await db.close()
    stores = await sql_backend.open()  # applies migration 5
    try:
        assert await stores.history.per_day(T0) == [(date(2024, 6, 1), 1)]
        await stores.steps.record(step())
        assert await stores.steps.for_agent("a") == [step()]
    finally:
        await stores.aclose()
    await _assert_indexes(sql_backend.url)


async def _assert_indexes(url: str) -> None:
    db = open_database(url)
    try:
        async with db.read() as conn:
            found = await conn.run_sync(
                lambda sync: {
                    table: {ix["name"] for ix in inspect(sync).get_indexes(table)}
                    for table in ("steps", "messages")
                }
            )
    finally:
        await db.close()
    assert "ix_steps_agent_id" in found["steps"]
    assert "ix_messages_created" in found["messages"]
