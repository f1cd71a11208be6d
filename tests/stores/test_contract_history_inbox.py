"""Store contract, part 2: recall history and the inbox. Runs on every backend."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from botmem.errors import NotFoundError
from botmem.events import InboundMessage
from botmem.stores.base import Stores
from botmem.types import Message, ToolCall

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def msg(agent: str, role: str, content: str | None, minutes: int, **kw: object) -> Message:
    return Message(agent, role, content, at(minutes), **kw)  # type: ignore[arg-type]


# --- history --------------------------------------------------------------------------


async def test_append_sets_ids_and_round_trips_every_field(stores: Stores) -> None:
    call = ToolCall("call_1", "core_memory_append", '{"label": "human", "content": "x"}')
    given = [
        msg("a", "user", "hello", 0, turn_id=1, tokens=3),
        msg("a", "assistant", None, 1, turn_id=1, tool_calls=(call,)),
        msg("a", "tool", '{"ok": true}', 2, turn_id=1, tool_call_id="call_1", name="x"),
    ]
    stored = await stores.history.append(given)
    ids = [m.id for m in stored]
    assert all(isinstance(i, int) for i in ids)
    assert ids == sorted(set(ids))  # type: ignore[type-var]
    assert [replace(m, id=None) for m in stored] == given
    assert await stores.history.since("a", 0) == stored
    assert await stores.history.since("a", ids[1]) == stored[1:]  # type: ignore[arg-type]
    assert await stores.history.for_turn("a", 1) == stored
    assert await stores.history.for_turn("a", 2) == []
    assert await stores.history.count("a") == 3
    assert await stores.history.append([]) == []


async def test_times_come_back_in_utc(stores: Stores) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2024, 3, 1, 11, 0, tzinfo=plus_two)
    [stored] = await stores.history.append([Message("a", "user", "x", local)])
    [read] = await stores.history.since("a", 0)
    assert read.created_at == local and read.created_at.utcoffset() == timedelta(0)
    assert stored.created_at == local


async def test_history_is_isolated_between_agents(stores: Stores) -> None:
    await stores.history.append([msg("a", "user", "my secret is basil", 0, turn_id=1)])
    await stores.history.append([msg("b", "user", "what is the secret?", 1, turn_id=1)])
    assert await stores.history.search("b", "secret basil", limit=10) != []
    assert all(m.agent_key == "b" for m, _ in await stores.history.search("b", "secret", limit=9))
    assert await stores.history.search("b", "basil", limit=10) == []
    assert [m.agent_key for m in await stores.history.since("b", 0)] == ["b"]
    assert [m.agent_key for m in await stores.history.for_turn("b", 1)] == ["b"]
    assert await stores.history.count("b") == 1
    assert [m.agent_key for m in await stores.history.between("b", T0, at(60), limit=9)] == ["b"]


async def test_search_treats_like_wildcards_literally(stores: Stores) -> None:
    await stores.history.append(
        # In this order: the other way round, "filename" would be found by its context.
        [msg("a", "user", "filename", 0), msg("a", "user", "file_name here", 1)]
    )
    found = await stores.history.search("a", "file_name", limit=10)
    assert [m.content for m, _ in found] == ["file_name here"]


async def test_between_is_half_open_and_oldest_first(stores: Stores) -> None:
    await stores.history.append([msg("a", "user", f"m{i}", i) for i in (5, 0, 10, 20)])
    found = await stores.history.between("a", at(0), at(20), limit=10)
    assert [m.content for m in found] == ["m0", "m5", "m10"]
    page = await stores.history.between("a", at(0), at(21), limit=2, offset=1)
    assert [m.content for m in page] == ["m5", "m10"]
    assert await stores.history.between("a", at(21), at(30), limit=10) == []


async def test_history_delete_agent(stores: Stores) -> None:
    await stores.history.append([msg("a", "user", "x", 0), msg("b", "user", "y", 0)])
    await stores.history.delete_agent("a")
    assert await stores.history.count("a") == 0
    assert await stores.history.count("b") == 1


# --- inbox ----------------------------------------------------------------------------


def inbound(
    message_id: str, agent: str = "telegram:42", source: str = "telegram"
) -> InboundMessage:
    return InboundMessage(
        source=source,
        message_id=message_id,
        agent_key=agent,
        text=f"text of {message_id}",
        user_id="42",
        received_at=T0,
        extra={"chat": {"id": 42}},
    )


async def test_inbox_add_get_and_duplicates(stores: Stores) -> None:
    first = await stores.inbox.add(inbound("1"))
    assert first is not None
    assert await stores.inbox.add(inbound("1")) is None
    other_source = await stores.inbox.add(inbound("1", source="discord"))
    assert other_source is not None and other_source != first
    item = await stores.inbox.get(first)
    assert item is not None
    assert item.inbound == inbound("1")
    assert (item.id, item.status, item.reply, item.attempts) == (first, "pending", None, 0)
    assert item.created_at.utcoffset() == timedelta(0)
    assert await stores.inbox.get(first + 1000) is None


async def test_inbox_find_by_platform_message_id_finished_or_not(stores: Stores) -> None:
    first = await stores.inbox.add(inbound("7"))
    other = await stores.inbox.add(inbound("7", source="discord"))
    assert first is not None and other is not None
    found = await stores.inbox.find("telegram", "7")
    assert found is not None and (found.id, found.status) == (first, "pending")
    await stores.inbox.mark_replied(first, "hi")
    await stores.inbox.mark_delivered(first)
    done = await stores.inbox.find("telegram", "7")
    assert done is not None and (done.id, done.status, done.reply) == (first, "delivered", "hi")
    found_other = await stores.inbox.find("discord", "7")
    assert found_other is not None and found_other.id == other
    assert await stores.inbox.find("telegram", "8") is None


async def test_concurrent_duplicate_adds_store_one(stores: Stores) -> None:
    ids = await asyncio.gather(*(stores.inbox.add(inbound("dup")) for _ in range(1000)))
    stored = [i for i in ids if i is not None]
    assert len(stored) == 1
    assert [i.id for i in await stores.inbox.unfinished()] == stored


async def test_inbox_status_transitions_and_unfinished(stores: Stores) -> None:
    ids = [await stores.inbox.add(inbound(str(n))) for n in range(4)]
    a, b, c, d = (i for i in ids if i is not None)
    assert await stores.inbox.start_attempt(a) == 1
    assert await stores.inbox.start_attempt(a) == 2
    await stores.inbox.mark_replied(a, "hello!")
    await stores.inbox.mark_replied(b, None)
    await stores.inbox.mark_delivered(b)
    await stores.inbox.mark_failed(c, "LLM down")
    unfinished = await stores.inbox.unfinished()
    assert [(i.id, i.status) for i in unfinished] == [(a, "replied"), (d, "pending")]
    assert (unfinished[0].reply, unfinished[0].attempts) == ("hello!", 2)
    failed = await stores.inbox.get(c)
    assert failed is not None and failed.status == "failed"


async def test_inbox_updates_of_missing_items_raise(stores: Stores) -> None:
    with pytest.raises(NotFoundError):
        await stores.inbox.start_attempt(999)
    with pytest.raises(NotFoundError):
        await stores.inbox.mark_delivered(999)


async def test_inbox_delete_agent(stores: Stores) -> None:
    await stores.inbox.add(inbound("1", agent="telegram:1"))
    kept = await stores.inbox.add(inbound("2", agent="telegram:2"))
    await stores.inbox.delete_agent("telegram:1")
    assert [i.id for i in await stores.inbox.unfinished()] == [kept]


async def test_ids_are_not_reused_after_a_wipe(stores: Stores) -> None:
    await stores.history.append([msg("a", "user", "x", 0)])
    last = await stores.history.append([msg("b", "user", "y", 1)])
    first_inbox = await stores.inbox.add(inbound("1", agent="b"))
    await stores.wipe_agent("b")
    [again] = await stores.history.append([msg("a", "user", "z", 2)])
    assert again.id is not None and last[0].id is not None and again.id > last[0].id
    new_inbox = await stores.inbox.add(inbound("2", agent="a"))
    assert first_inbox is not None and new_inbox is not None and new_inbox > first_inbox
