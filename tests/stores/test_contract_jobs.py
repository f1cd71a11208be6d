"""Store contract, part 5: scheduled jobs and their runs. Runs on every backend, plus
migration 3 on a database created at version 2."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from botmem.events import InboundMessage
from botmem.stores.base import Stores
from botmem.stores.jobs import Job, JobKind
from botmem.stores.sql.engine import Conn, open_database
from botmem.stores.sql.migration_1 import metadata_v1
from botmem.stores.sql.migration_2 import metadata_v2
from botmem.stores.sql.migrations import migrate
from tests.stores.conftest import Backend

T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
PARIS = timezone(timedelta(hours=2))


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def job(agent: str = "telegram:1", kind: JobKind = "checkin", minutes: int = 60, **kw: Any) -> Job:
    return Job(agent, kind, f"at:{at(minutes).isoformat()}", "Europe/Paris", at(minutes), **kw)


async def test_add_and_get_round_trip(stores: Stores, backend: Backend) -> None:
    payload = {"note": "ask about the exam", "conversation": {"chat": 42, "thread": None}}
    local_next = datetime(2024, 6, 1, 12, 30, tzinfo=PARIS)
    given = Job("telegram:1", "checkin", "cron:30 12 * * 1-5", "Europe/Paris", local_next, payload)
    stored = await stores.jobs.add(given)
    assert stored.id is not None
    assert stored.created_at == backend.clock.now
    assert stored.status == "active"
    assert stored.next_run_at == local_next and stored.next_run_at.utcoffset() == timedelta(0)
    assert replace(stored, id=None, created_at=None) == given
    assert await stores.jobs.get(stored.id) == stored
    assert await stores.jobs.get(stored.id + 1000) is None


async def test_payload_is_not_shared_with_callers(stores: Stores) -> None:
    payload: dict[str, Any] = {"note": "x", "tags": ["a"]}
    stored = await stores.jobs.add(job(payload=payload))
    payload["tags"].append("b")
    stored.payload["note"] = "changed"
    assert stored.id is not None
    read = await stores.jobs.get(stored.id)
    assert read is not None and read.payload == {"note": "x", "tags": ["a"]}


async def test_ids_grow_and_active_filters_and_orders(stores: Stores) -> None:
    first = await stores.jobs.add(job("a", minutes=30))
    second = await stores.jobs.add(job("b", "consolidate", minutes=10))
    third = await stores.jobs.add(job("a", "consolidate", minutes=5))
    assert first.id is not None and second.id is not None and third.id is not None
    assert first.id < second.id < third.id
    await stores.jobs.cancel(second.id)
    assert [j.id for j in await stores.jobs.active()] == [first.id, third.id]
    assert [j.id for j in await stores.jobs.active("a")] == [first.id, third.id]
    assert await stores.jobs.active("b") == []
    assert await stores.jobs.active("nobody") == []


async def test_fired_with_a_next_run_stays_active(stores: Stores) -> None:
    stored = await stores.jobs.add(job(minutes=0))
    assert stored.id is not None
    await stores.jobs.fired(stored.id, at(1), at(60 * 24))
    read = await stores.jobs.get(stored.id)
    assert read is not None
    assert (read.status, read.last_run_at, read.next_run_at) == ("active", at(1), at(60 * 24))
    assert [j.id for j in await stores.jobs.active()] == [stored.id]


async def test_fired_without_a_next_run_is_done(stores: Stores) -> None:
    stored = await stores.jobs.add(job(minutes=0))
    assert stored.id is not None
    run_at = datetime(2024, 6, 1, 10, 2, tzinfo=PARIS)  # at(2), in another zone
    await stores.jobs.fired(stored.id, run_at, None)
    read = await stores.jobs.get(stored.id)
    assert read is not None and read.last_run_at is not None
    assert (read.status, read.last_run_at, read.next_run_at) == ("done", at(2), None)
    assert read.last_run_at.utcoffset() == timedelta(0)
    assert await stores.jobs.active() == []
    assert await stores.jobs.cancel(stored.id) is False


async def test_fired_keeps_a_cancel_and_ignores_missing_jobs(stores: Stores) -> None:
    stored = await stores.jobs.add(job(minutes=0))
    assert stored.id is not None
    assert await stores.jobs.cancel(stored.id) is True
    await stores.jobs.fired(stored.id, at(1), None)  # the run had started before the cancel
    read = await stores.jobs.get(stored.id)
    assert read is not None and read.status == "cancelled"
    await stores.jobs.fired(stored.id + 1000, at(1), None)
    assert await stores.jobs.runs_since("telegram:1", "checkin", T0) == 1


async def test_cancel_once(stores: Stores) -> None:
    stored = await stores.jobs.add(job())
    assert stored.id is not None
    assert await stores.jobs.cancel(stored.id) is True
    assert await stores.jobs.cancel(stored.id) is False
    assert await stores.jobs.cancel(stored.id + 1000) is False
    read = await stores.jobs.get(stored.id)
    assert read is not None and read.status == "cancelled"
    assert await stores.jobs.active() == []


async def test_runs_since_counts_per_agent_and_kind(stores: Stores) -> None:
    checkin = await stores.jobs.add(job("a", "checkin", minutes=0))
    consolidate = await stores.jobs.add(job("a", "consolidate", minutes=0))
    other = await stores.jobs.add(job("b", "checkin", minutes=0))
    assert checkin.id and consolidate.id and other.id
    for minutes in (0, 10, 20):
        await stores.jobs.fired(checkin.id, at(minutes), at(minutes + 10))
    await stores.jobs.fired(consolidate.id, at(15), None)
    await stores.jobs.fired(other.id, at(15), None)
    assert await stores.jobs.runs_since("a", "checkin", at(0)) == 3
    assert await stores.jobs.runs_since("a", "checkin", at(10)) == 2  # at `since` counts
    assert await stores.jobs.runs_since("a", "checkin", at(11)) == 1
    assert await stores.jobs.runs_since("a", "checkin", at(21)) == 0
    local_since = datetime(2024, 6, 1, 10, 10, tzinfo=PARIS)  # at(10)
    assert await stores.jobs.runs_since("a", "checkin", local_since) == 2
    assert await stores.jobs.runs_since("a", "consolidate", at(0)) == 1
    assert await stores.jobs.runs_since("b", "checkin", at(0)) == 1
    assert await stores.jobs.runs_since("b", "consolidate", at(0)) == 0


async def test_a_skipped_run_moves_the_job_on_but_is_not_counted(stores: Stores) -> None:
    stored = await stores.jobs.add(job("a", "checkin", minutes=0))
    assert stored.id is not None
    await stores.jobs.fired(stored.id, at(1), at(60), ran=False)
    read = await stores.jobs.get(stored.id)
    assert read is not None and (read.last_run_at, read.next_run_at) == (at(1), at(60))
    assert await stores.jobs.runs_since("a", "checkin", at(0)) == 0


async def test_delete_agent_removes_jobs_and_runs(stores: Stores) -> None:
    gone = await stores.jobs.add(job("a"))
    kept = await stores.jobs.add(job("b"))
    assert gone.id and kept.id
    await stores.jobs.fired(gone.id, at(1), at(2))
    await stores.jobs.fired(kept.id, at(1), at(2))
    await stores.jobs.delete_agent("a")
    assert await stores.jobs.get(gone.id) is None
    assert [j.id for j in await stores.jobs.active()] == [kept.id]
    assert await stores.jobs.runs_since("a", "checkin", T0) == 0
    assert await stores.jobs.runs_since("b", "checkin", T0) == 1


async def test_wipe_agent_removes_jobs_and_ids_are_not_reused(stores: Stores) -> None:
    await stores.jobs.add(job("a"))
    last = await stores.jobs.add(job("b"))
    assert last.id is not None
    await stores.jobs.fired(last.id, at(1), None)
    await stores.wipe_agent("b")
    assert await stores.jobs.get(last.id) is None
    assert await stores.jobs.runs_since("b", "checkin", T0) == 0
    assert [j.agent_key for j in await stores.jobs.active()] == ["a"]
    again = await stores.jobs.add(job("a"))
    assert again.id is not None and again.id > last.id


# --- migration 3 ----------------------------------------------------------------------


def _rows(table: str) -> list[dict[str, Any]]:
    """Rows for the version-2 tables (frozen copies: this stays true as the stores move on)."""
    inbound = InboundMessage("telegram", "m1", "a", "hi", "1", received_at=T0)
    return {
        "agents": [{"agent_key": "a", "created_at": T0}],
        "messages": [
            {"agent_key": "a", "role": "user", "content": "I grew up in Porto"}
            | {"spoken": "I grew up in Porto", "tool_calls": [], "tokens": 0, "created_at": T0}
        ],
        "passages": [{"agent_key": "a", "text": "likes tea", "created_at": T0}],
        "inbox": [
            {"source": "telegram", "source_message_id": "m1", "agent_key": "a"}
            | {"payload": inbound.to_dict(), "status": "pending", "attempts": 0}
            | {"created_at": T0, "updated_at": T0}
        ],
    }[table]


async def _create_v2_with_data(url: str) -> None:
    db = open_database(url)

    async def fill(conn: Conn) -> None:
        for table in ("agents", "messages", "inbox"):
            await conn.execute(metadata_v1.tables[table].insert(), _rows(table))
        await conn.execute(metadata_v2.tables["passages"].insert(), _rows("passages"))

    try:
        assert await migrate(db, until=2) == [1, 2]
        await db.write(fill)
    finally:
        await db.close()


async def test_migration_3_keeps_existing_data(sql_backend: Backend) -> None:
    assert sql_backend.url is not None
    await _create_v2_with_data(sql_backend.url)
    stores = await sql_backend.open()  # applies migration 3
    try:
        assert (await stores.agents.get("a")) is not None
        found = await stores.history.search("a", "Porto", limit=5)
        assert [m.content for m, _ in found] == ["I grew up in Porto"]
        assert [p.text for p in await stores.archival.select("a", limit=5)] == ["likes tea"]
        assert [i.inbound.message_id for i in await stores.inbox.unfinished()] == ["m1"]
        assert await stores.jobs.active() == []
        added = await stores.jobs.add(job("a"))
        assert [j.id for j in await stores.jobs.active("a")] == [added.id]
    finally:
        await stores.aclose()
