"""Store contract, part 4: leases and claimable inbox work. Runs on every backend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from botmem.events import InboundMessage
from botmem.stores.base import Stores

NOW = datetime.now(UTC)


def inbound(
    agent: str, mid: str, *, kind: str = "message", source: str = "telegram"
) -> InboundMessage:
    return InboundMessage(
        source=source, message_id=mid, agent_key=agent, text="hi", user_id="u", kind=kind
    )


async def test_a_lease_has_one_holder_until_it_runs_out(stores: Stores) -> None:
    assert await stores.leases.acquire("a", "w1", ttl=0.3)
    assert not await stores.leases.acquire("a", "w2", ttl=30)
    assert await stores.leases.acquire("a", "w1", ttl=30)  # its holder may take it again
    assert await stores.leases.holder("a") == "w1"
    assert await stores.leases.acquire("b", "w2", ttl=30)  # other names are independent
    await stores.leases.release(["a"], "w1")
    assert await stores.leases.holder("a") is None
    assert await stores.leases.acquire("a", "w2", ttl=0.3)
    await asyncio.sleep(0.4)
    assert await stores.leases.holder("a") is None
    assert await stores.leases.acquire("a", "w3", ttl=30)  # ran out: free for anyone


async def test_renew_keeps_only_the_holders_own_leases(stores: Stores) -> None:
    assert await stores.leases.acquire("a", "w1", ttl=0.3)
    assert await stores.leases.acquire("b", "w2", ttl=30)
    assert await stores.leases.renew(["a", "b", "c"], "w1", ttl=30) == {"a"}
    await asyncio.sleep(0.4)
    assert await stores.leases.holder("a") == "w1"  # renewed past the first expiry
    await stores.leases.release(["a", "b"], "w1")  # b is w2's: left alone
    assert await stores.leases.holder("b") == "w2"
    assert await stores.leases.renew([], "w1", ttl=30) == set()


async def test_a_lease_taken_over_is_not_renewed_by_its_old_holder(stores: Stores) -> None:
    assert await stores.leases.acquire("a", "w1", ttl=0.2)
    await asyncio.sleep(0.3)
    assert await stores.leases.acquire("a", "w2", ttl=30)
    assert await stores.leases.renew(["a"], "w1", ttl=30) == set()
    assert await stores.leases.holder("a") == "w2"


async def test_of_many_takers_at_once_exactly_one_gets_the_lease(stores: Stores) -> None:
    got = await asyncio.gather(*(stores.leases.acquire("a", f"w{i}", ttl=30) for i in range(8)))
    assert sum(got) == 1


async def test_claimable_lists_agents_with_work_and_no_live_lease(stores: Stores) -> None:
    for agent, mid in [("x", "1"), ("y", "2"), ("x", "3"), ("z", "4")]:
        await stores.inbox.add(inbound(agent, mid))
    now = datetime.now(UTC)
    assert await stores.inbox.claimable(turns=True, sources=[], now=now, limit=10) == [
        "x",
        "y",
        "z",
    ]
    assert await stores.inbox.claimable(turns=True, sources=[], now=now, limit=2) == ["x", "y"]
    await stores.leases.acquire("x", "w1", ttl=30)
    assert await stores.inbox.claimable(turns=True, sources=[], now=now, limit=10) == ["y", "z"]
    later = now + timedelta(seconds=60)  # x's lease has run out by then
    assert await stores.inbox.claimable(turns=True, sources=[], now=later, limit=10) == [
        "x",
        "y",
        "z",
    ]


async def test_claimable_splits_turns_from_replies_and_commands(stores: Stores) -> None:
    turn = await stores.inbox.add(inbound("t", "1"))
    answered = await stores.inbox.add(inbound("r", "2", source="slack"))
    await stores.inbox.add(inbound("c", "3", kind="command"))
    done = await stores.inbox.add(inbound("d", "4"))
    assert turn and answered and done
    await stores.inbox.mark_replied(answered, "hello")
    await stores.inbox.mark_replied(done, "bye")
    await stores.inbox.mark_delivered(done)
    now = datetime.now(UTC)
    claim = stores.inbox.claimable
    assert await claim(turns=True, sources=[], now=now, limit=9) == ["t"]  # a worker
    assert await claim(turns=False, sources=["telegram"], now=now, limit=9) == ["c"]
    assert await claim(turns=False, sources=["slack"], now=now, limit=9) == ["r"]
    assert await claim(turns=True, sources=["telegram", "slack"], now=now, limit=9) == [
        "t",
        "r",
        "c",
    ]
    assert await claim(turns=False, sources=[], now=now, limit=9) == []


async def test_unfinished_for_one_agent_in_order(stores: Stores) -> None:
    first = await stores.inbox.add(inbound("a", "1"))
    await stores.inbox.add(inbound("b", "2"))
    second = await stores.inbox.add(inbound("a", "3"))
    assert first and second
    await stores.inbox.mark_replied(first, "ok")
    items = await stores.inbox.unfinished_for("a")
    assert [(i.id, i.status) for i in items] == [(first, "replied"), (second, "pending")]
    assert await stores.inbox.unfinished_for("nobody") == []
