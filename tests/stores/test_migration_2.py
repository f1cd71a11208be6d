"""Migration 2 on a database created at version 1: old history becomes searchable, and
each message said gets its context."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from botmem.stores.sql.engine import Conn, open_database
from botmem.stores.sql.history import unindexed_query
from botmem.stores.sql.migration_1 import metadata_v1
from botmem.stores.sql.migrations import migrate
from tests.stores.conftest import Backend

T0 = datetime(2024, 1, 2, 3, 4, tzinfo=UTC)


def _v1_message(role: str, content: str, minutes: int = 0, agent: str = "a") -> dict[str, object]:
    return {
        "agent_key": agent,
        "role": role,
        "content": content,
        "spoken": content,
        "tool_calls": [],
        "tokens": 0,
        "created_at": T0.replace(minute=minutes),
    }


async def _create_v1_with_history(url: str) -> None:
    db = open_database(url)
    messages = metadata_v1.tables["messages"]

    async def fill(conn: Conn) -> None:
        await conn.execute(
            messages.insert(),
            [
                _v1_message("user", "my grandmother lived in Porto", 0),
                _v1_message("tool", "Porto Porto Porto", 1),
                _v1_message("user", "Paris", 2, agent="b"),
                _v1_message("assistant", "Porto sounds lovely", 3),
                _v1_message("user", "", 4),
                _v1_message("user", "she loved the river", 5),
                _v1_message("user", "and Lyon", 6, agent="b"),
            ],
        )

    try:
        assert await migrate(db, until=1) == [1]
        await db.write(fill)
        assert await migrate(db, until=1) == []
    finally:
        await db.close()


async def test_migration_2_indexes_existing_messages(sql_backend: Backend) -> None:
    assert sql_backend.url is not None
    await _create_v1_with_history(sql_backend.url)
    stores = await sql_backend.open()  # applies migration 2
    try:
        found = await stores.history.search("a", "Porto", limit=10)
        assert [m.content for m, _ in found] == [
            "Porto sounds lovely",
            "my grandmother lived in Porto",
            "she loved the river",  # by its context
        ]
        assert await stores.history.search("b", "Porto", limit=10) == []
        waiting = await stores.history.unindexed(limit=10)
        assert [m.role for m in waiting] == ["user", "user", "assistant", "user", "user"]
        await stores.history.mark_indexed([m.id or 0 for m in waiting])
        assert await stores.history.unindexed(limit=10) == []
        assert await stores.archival.count("a") == 0
    finally:
        await stores.aclose()
    assert await _contexts(sql_backend.url) == [
        ("a", ""),
        ("a", ""),
        ("b", ""),
        ("a", "my grandmother lived in Porto"),
        ("a", ""),
        ("a", "Porto sounds lovely"),
        ("b", "Paris"),
    ]


async def _contexts(url: str) -> list[tuple[str, str]]:
    db = open_database(url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(text("SELECT agent_key, context FROM messages ORDER BY id"))
            return [(row.agent_key, row.context) for row in rows]
    finally:
        await db.close()


async def test_unindexed_uses_the_partial_index_on_sqlite(tmp_path: object) -> None:
    db = open_database(f"sqlite:///{tmp_path}/plan.db")
    try:
        await migrate(db)
        async with db.read() as conn:
            query = unindexed_query(5).compile(
                dialect=conn.dialect, compile_kwargs={"literal_binds": True}
            )
            plan = await conn.execute(text(f"EXPLAIN QUERY PLAN {query}"))
            details = " ".join(str(row[-1]) for row in plan)
    finally:
        await db.close()
    assert "ix_messages_unindexed" in details
