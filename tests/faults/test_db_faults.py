"""Database faults during a turn: a locked SQLite file, and a write that fails once.

A real App on SQLite on disk, a scripted model that appends a line to the human block and then
replies. The faults:

- another connection holds ``BEGIN EXCLUSIVE`` on the file for a while (a backup tool, a
  second process, an operator's sqlite3 shell), shorter and longer than botmem waits;
- one write fails with "database or disk is full" at a chosen point of the turn.

What a user of the framework expects: the turn is not lost (it finishes, or runs again later:
in the running bot or at the next start), and nothing is half-written (every tool call has its
real result, every edit applied once, one reply). A store failure during a turn runs
the turn again a little later, in the running bot.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from botmem.agent.context import INTERRUPTED
from botmem.app import App
from botmem.stores.memory_vectors import MemoryVectorIndex
from botmem.stores.sql import engine as sql_engine
from botmem.stores.sql import open_sql_stores
from botmem.testing import FakeAdapter, ScriptedLLM, call, reply
from botmem.testing.embeddings import HashEmbedder
from tests.helpers import make_settings

USER = "alice"
AGENT = f"fake:{USER}"
LINE = "Favourite tea: lapsang souchong"
ANSWER = "Noted: lapsang souchong."


def model(messages: list[dict[str, Any]]) -> Any:
    """Append LINE, then answer; a failed append (an error result) is tried again."""
    last = messages[-1]
    if last["role"] == "user":
        return call("core_memory_append", label="human", content=LINE)
    if last["role"] == "tool" and str(last["content"]).startswith("Error"):
        return call("core_memory_append", label="human", content=LINE)
    return reply(ANSWER)


def disk_full() -> OperationalError:
    """What SQLAlchemy raises when SQLite cannot write (Database.write does not retry it)."""
    return OperationalError("INSERT ...", {}, sqlite3.OperationalError("database or disk is full"))


@dataclass
class Rig:
    app: App
    chat: FakeAdapter
    llm: ScriptedLLM

    async def close(self) -> None:
        await self.app.router.drain()
        await self.app.stop()
        await self.app.aclose()


async def open_rig(path: Path, llm: ScriptedLLM) -> Rig:
    stores = await open_sql_stores(f"sqlite:///{db_file(path)}", None, MemoryVectorIndex())
    app = await App.open(make_settings(), llm=llm, embedder=HashEmbedder(), stores=stores)
    chat = FakeAdapter()
    await app.start([chat])
    await app.router.drain()  # what the start replayed
    return Rig(app, chat, llm)


def db_file(path: Path) -> Path:
    return path / "botmem.db"


def fail_once(
    obj: Any, name: str, when: Callable[..., bool], exc: Callable[[], Exception]
) -> list[int]:
    """Make `obj.name(...)` raise `exc()` the first time `when(...)` holds; returns a list
    that gets one item when it fired."""
    original = getattr(obj, name)
    fired: list[int] = []

    async def failing(*args: Any, **kwargs: Any) -> Any:
        if not fired and when(*args, **kwargs):
            fired.append(1)
            raise exc()
        return await original(*args, **kwargs)

    setattr(obj, name, failing)
    return fired


def is_role(role: str) -> Callable[..., bool]:
    return lambda items, *a, **k: any(m.role == role for m in items)


def tool_calling(items: Any, *a: Any, **k: Any) -> bool:
    return any(m.role == "assistant" and m.tool_calls for m in items)


class Lock:
    """``BEGIN EXCLUSIVE`` on the database file from another connection, for `seconds`."""

    def __init__(self, path: Path, seconds: float):
        self._conn = sqlite3.connect(
            db_file(path), isolation_level=None, check_same_thread=False, timeout=10
        )
        self._seconds = seconds
        self.released = threading.Event()
        self.taken = False

    def take(self) -> None:
        if self.taken:
            return  # the turn asked again (retried while locked): the lock is already held
        self.taken = True
        self._conn.execute("BEGIN EXCLUSIVE")
        threading.Timer(self._seconds, self._release).start()

    def _release(self) -> None:
        self._conn.execute("COMMIT")
        self._conn.close()
        self.released.set()


def lock_at_first_step(path: Path, seconds: float) -> tuple[ScriptedLLM, Lock]:
    """A model that takes the lock while answering the turn's first step (so the turn's
    next write, storing that step, meets a locked database)."""
    lock = Lock(path, seconds)

    def locking(messages: list[dict[str, Any]]) -> Any:
        if messages[-1]["role"] == "user" and not lock.released.is_set():
            lock.take()
        return model(messages)

    return ScriptedLLM(responder=locking), lock


# --- checking the outcome -------------------------------------------------------------------


def read(path: Path, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_file(path)) as conn:
        return list(conn.execute(query, args))


def human(path: Path) -> str:
    rows = read(
        path,
        "SELECT b.value FROM blocks b JOIN agent_blocks a ON a.block_id = b.id "
        "WHERE a.agent_key = ? AND a.label = 'human'",
        AGENT,
    )
    return str(rows[0][0]) if rows else ""


def turn_history(path: Path) -> list[tuple[str, str | None, str, str | None]]:
    return [
        (role, content, calls, call_id)
        for role, content, calls, call_id in read(
            path,
            "SELECT role, content, tool_calls, tool_call_id FROM messages "
            "WHERE agent_key = ? ORDER BY id",
            AGENT,
        )
    ]


def assert_whole(path: Path, sent: list[str]) -> None:
    """Not lost, nothing half-written: one real reply, the edit once, every call answered."""
    assert sent == [ANSWER]
    assert read(path, "SELECT status FROM inbox") == [("delivered",)]
    assert human(path).count(LINE) == 1
    assert read(path, "SELECT count(*) FROM block_edits WHERE agent_key = ?", AGENT) == [(1,)]
    history = turn_history(path)
    assert history[0][0] == "user" and history[-1][:2] == ("assistant", ANSWER)
    calls = [m for m in history if m[0] == "assistant" and m[2] != "[]"]
    results = [m for m in history if m[0] == "tool"]
    assert len(calls) == len(results)  # every call has its result, stored
    assert all(r[3] and r[3] in c[2] for c, r in zip(calls, results, strict=True))
    assert not any((r[1] or "") == INTERRUPTED for r in results)


# --- a locked database ------------------------------------------------------------------------


async def test_a_database_locked_for_two_seconds_mid_turn_only_delays_the_turn(
    tmp_path: Path,
) -> None:
    llm, lock = lock_at_first_step(tmp_path, 2.0)
    rig = await open_rig(tmp_path, llm)
    started = time.monotonic()
    answer = await rig.chat.say(USER, "I love lapsang souchong")
    took = time.monotonic() - started
    await rig.close()
    assert lock.released.is_set()
    assert answer == ANSWER
    assert took >= 2.0  # it waited for the lock (up to ~6 s in all), then carried on
    assert_whole(tmp_path, [m.text for m in rig.chat.sent])


async def test_a_database_locked_longer_than_botmem_waits_runs_the_turn_again_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the wait (busy_timeout x LOCKED_ATTEMPTS: 50 ms x 100 by default, shortened here),
    the write fails with StoreError: the router runs the turn again a little later (from its
    stored steps), once the lock is gone: no apology, one answer, nothing applied twice."""
    pragmas = tuple(p for p in sql_engine._SQLITE_PRAGMAS if "busy_timeout" not in p)
    monkeypatch.setattr(sql_engine, "_SQLITE_PRAGMAS", (*pragmas, "PRAGMA busy_timeout=100"))
    monkeypatch.setattr(sql_engine, "LOCKED_ATTEMPTS", 3)
    llm, lock = lock_at_first_step(tmp_path, 3.0)
    rig = await open_rig(tmp_path, llm)
    answer = await rig.chat.say(USER, "I love lapsang souchong")
    assert lock.released.wait(10)
    await rig.close()
    assert answer == ANSWER
    assert read(tmp_path, "SELECT status, attempts FROM inbox") == [("delivered", 1)]
    assert_whole(tmp_path, [m.text for m in rig.chat.sent])


# --- one write fails ("database or disk is full") ---------------------------------------------


async def test_a_failed_edit_write_goes_back_to_the_model_which_can_retry_it(
    tmp_path: Path,
) -> None:
    """The edit's transaction fails: nothing of it is written, the model is told the tool
    failed (the tool boundary) and, trying again, applies it once."""
    rig = await open_rig(tmp_path, ScriptedLLM(responder=model))
    fired = fail_once(rig.app.stores.blocks, "edit", lambda *a, **k: True, disk_full)
    answer = await rig.chat.say(USER, "I love lapsang souchong")
    await rig.close()
    assert fired and answer == ANSWER
    results = [m[1] for m in turn_history(tmp_path) if m[0] == "tool"]
    assert results[0] == "Error: the tool failed unexpectedly (OperationalError)"
    assert (results[1] or "").startswith("Block 'human' updated")
    assert human(tmp_path).count(LINE) == 1
    assert read(tmp_path, "SELECT status FROM inbox") == [("delivered",)]


async def test_a_failed_write_of_a_step_is_retried_not_lost(tmp_path: Path) -> None:
    """Storing the model's tool-call step fails once: nothing is half-written (the step is
    simply not stored) and the router runs the turn again a second later."""
    rig = await open_rig(tmp_path, ScriptedLLM(responder=model))
    fired = fail_once(rig.app.stores.history, "append", tool_calling, disk_full)
    await rig.chat.say(USER, "I love lapsang souchong")
    await rig.close()
    again = await open_rig(tmp_path, ScriptedLLM(responder=model))  # a later start
    await again.close()
    assert fired
    assert_whole(tmp_path, [m.text for m in [*rig.chat.sent, *again.chat.sent]])


async def test_a_failed_write_of_a_tool_result_is_retried_and_leaves_no_open_call(
    tmp_path: Path,
) -> None:
    """The edit commits, then storing its result fails once: the turn runs again, the call
    is made again with the same edit key (the recorded edit comes back, not a second one)
    and its result is stored."""
    rig = await open_rig(tmp_path, ScriptedLLM(responder=model))
    fired = fail_once(rig.app.stores.history, "append", is_role("tool"), disk_full)
    await rig.chat.say(USER, "I love lapsang souchong")
    await rig.close()
    again = await open_rig(tmp_path, ScriptedLLM(responder=model))
    await again.close()
    assert fired
    assert_whole(tmp_path, [m.text for m in [*rig.chat.sent, *again.chat.sent]])


async def test_a_failed_mark_replied_is_retried_without_a_new_step(tmp_path: Path) -> None:
    """The reply is stored in the history, marking the row 'replied' fails: the turn runs
    again, finds its stored reply (no LLM call) and marks and sends it once."""
    llm = ScriptedLLM(responder=model)
    rig = await open_rig(tmp_path, llm)
    fired = fail_once(rig.app.stores.inbox, "mark_replied", lambda *a, **k: True, disk_full)
    await rig.chat.say(USER, "I love lapsang souchong")
    await rig.close()
    assert fired and len(llm.tool_requests) == 2  # the edit step and the reply, once each
    assert_whole(tmp_path, [m.text for m in rig.chat.sent])


async def test_a_failed_mark_delivered_does_not_send_the_reply_twice(tmp_path: Path) -> None:
    rig = await open_rig(tmp_path, ScriptedLLM(responder=model))
    fired = fail_once(rig.app.stores.inbox, "mark_delivered", lambda *a, **k: True, disk_full)
    await rig.chat.say(USER, "I love lapsang souchong")
    await rig.close()
    again = await open_rig(tmp_path, ScriptedLLM(responder=model))
    await again.close()
    assert fired
    assert_whole(tmp_path, [m.text for m in [*rig.chat.sent, *again.chat.sent]])
