"""Store contract, part 4: archival passages (text, tags, dates). Runs on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from botmem.stores.base import Passage, Stores

T0 = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def passage(text: str, n: int = 0, *tags: str, agent: str = "a") -> Passage:
    return Passage(agent, text, day(n), tags=tags)


def texts_of(found: list[Passage]) -> list[str]:
    return [p.text for p in found]


async def test_insert_sets_ids_and_round_trips(stores: Stores) -> None:
    plus_two = timezone(timedelta(hours=2))
    given = [
        Passage("a", "Ann likes tea", day(0).astimezone(plus_two), ("food", "ann"), (3, 1)),
        Passage("a", "Ann moved to Lyon", day(1)),
    ]
    stored = await stores.archival.insert(given)
    assert [p.id for p in stored] == sorted({p.id for p in stored})  # type: ignore[type-var]
    assert [(p.text, p.tags, p.source_message_ids) for p in stored] == [
        ("Ann likes tea", ("food", "ann"), (3, 1)),
        ("Ann moved to Lyon", (), ()),
    ]
    ids = [p.id or 0 for p in stored]
    read = await stores.archival.get_many("a", [ids[1], 9999, ids[0]])
    assert read == [stored[1], stored[0]]
    assert read[1].created_at == day(0) and read[1].created_at.utcoffset() == timedelta(0)
    assert await stores.archival.get_many("b", ids) == []
    assert await stores.archival.insert([]) == []
    assert await stores.archival.count("a") == 2 and await stores.archival.count("b") == 0


async def test_select_is_newest_first_with_all_tags_and_half_open_dates(stores: Stores) -> None:
    await stores.archival.insert(
        [
            passage("p0", 0, "work"),
            passage("p1", 1, "work", "urgent"),
            passage("p2", 2, "urgent"),
            passage("p3", 3, "urgent", "work", "urgent"),  # a repeated tag counts once
            passage("p4", 4),
            passage("other agent", 2, "work", agent="b"),
        ]
    )

    async def select(**kw: object) -> list[str]:
        return texts_of(await stores.archival.select("a", limit=10, **kw))  # type: ignore[arg-type]

    assert await select() == ["p4", "p3", "p2", "p1", "p0"]
    assert texts_of(await stores.archival.select("a", limit=2)) == ["p4", "p3"]
    assert await select(tags=["work"]) == ["p3", "p1", "p0"]
    assert await select(tags=["work", "urgent"]) == ["p3", "p1"]
    assert await select(tags=["urgent", "work", "work"]) == ["p3", "p1"]
    assert await select(tags=["missing"]) == []
    assert await select(tags=[]) == await select()
    assert await select(start=day(1), end=day(3)) == ["p2", "p1"]
    assert await select(start=day(3)) == ["p4", "p3"]
    assert await select(end=day(1)) == ["p0"]
    assert await select(tags=["urgent"], start=day(2), end=day(4)) == ["p3", "p2"]


async def test_search_ranks_and_filters(stores: Stores) -> None:
    await stores.archival.insert(
        [
            passage("Ann's sister Maya lives in Oslo; Maya visits in May", 0, "family"),
            passage("Ann works in Oslo as a nurse", 1, "work"),
            passage("Ann likes green tea", 2, "food"),
            passage("Maya is secret to agent b", 3, agent="b"),
        ]
    )

    async def search(query: str, **kw: object) -> list[str]:
        found = await stores.archival.search("a", query, limit=10, **kw)  # type: ignore[arg-type]
        scores = [score for _, score in found]
        assert all(score > 0 for score in scores) and scores == sorted(scores, reverse=True)
        return texts_of([p for p, _ in found])

    found = await search("where does Maya live")
    assert found == ["Ann's sister Maya lives in Oslo; Maya visits in May"]
    both = await search("Maya Oslo")
    assert both[0].startswith("Ann's sister Maya") and len(both) == 2
    assert await search("Oslo", tags=["work"]) == ["Ann works in Oslo as a nurse"]
    assert await search("Oslo", start=day(1)) == ["Ann works in Oslo as a nurse"]
    assert await search("Oslo", end=day(1)) == [found[0]]
    assert await search("zebra") == [] and await search("?!") == []
    assert len(await stores.archival.search("a", "Ann", limit=2)) == 2


@pytest.mark.parametrize("query", ['"', "NEAR(a b)", "-x", "*", "(", "🐈", "a & !b", "'"])
async def test_search_with_hostile_syntax_never_raises(stores: Stores, query: str) -> None:
    await stores.archival.insert([passage("some text")])
    await stores.archival.search("a", query, limit=5)


async def test_delete_only_removes_own_passages(stores: Stores) -> None:
    mine, theirs = await stores.archival.insert(
        [passage("mine", 0, "t"), passage("theirs", 0, "t", agent="b")]
    )
    assert mine.id is not None and theirs.id is not None
    assert await stores.archival.delete("a", theirs.id) is False
    assert await stores.archival.get_many("b", [theirs.id]) == [theirs]
    assert await stores.archival.delete("a", mine.id) is True
    assert await stores.archival.delete("a", mine.id) is False
    assert await stores.archival.count("a") == 0
    assert await stores.archival.search("a", "mine", limit=5) == []
    assert await stores.archival.select("a", limit=5, tags=["t"]) == []
    assert await stores.archival.select("b", limit=5, tags=["t"]) == [theirs]


async def test_wipe_agent_removes_passages_and_vectors(stores: Stores) -> None:
    [kept] = await stores.archival.insert([passage("keep me", agent="b")])
    await stores.archival.insert([passage("forget me", 0, "x"), passage("me too", 1)])
    vector = np.array([[1.0, 0.0]], dtype=np.float32)
    await stores.vectors.upsert("passages", "a", ["1"], vector)
    await stores.vectors.upsert("passages", "b", [str(kept.id)], vector)
    await stores.wipe_agent("a")
    assert await stores.archival.count("a") == 0
    assert await stores.archival.search("a", "forget", limit=5) == []
    assert await stores.vectors.query("passages", "a", vector, limit=5) == []
    assert await stores.archival.count("b") == 1
    assert len(await stores.vectors.query("passages", "b", vector, limit=5)) == 1
    [again] = await stores.archival.insert([passage("new", agent="a")])
    assert again.id is not None and kept.id is not None and again.id > kept.id
