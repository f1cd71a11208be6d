"""Store contract, part 3: full-text search of recall history and vector bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from botmem.stores.base import Stores
from botmem.types import Message, ToolCall
from tests.stores.conftest import Backend

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def msg(agent: str, role: str, content: str | None, minutes: int, **kw: object) -> Message:
    return Message(agent, role, content, T0 + timedelta(minutes=minutes), **kw)  # type: ignore[arg-type]


async def said(stores: Stores, *texts: str, agent: str = "a") -> list[Message]:
    return await stores.history.append(
        [msg(agent, "user", text, minute) for minute, text in enumerate(texts)]
    )


async def contents(
    stores: Stores, query: str, agent: str = "a", limit: int = 50, offset: int = 0
) -> list[str | None]:
    found = await stores.history.search(agent, query, limit=limit, offset=offset)
    return [m.content for m in found]


async def test_rare_word_twice_ranks_above_a_common_word(stores: Stores) -> None:
    await said(
        stores,
        "dinner was fine yesterday evening",
        "Paris, oh Paris in the spring",
        "dinner with the whole team",
        "dinner again at the usual place",
        "the weather was grey all day",
    )
    found = await contents(stores, "dinner in Paris")
    assert found[0] == "Paris, oh Paris in the spring"
    assert sorted(found[1:]) == [
        "dinner again at the usual place",
        "dinner was fine yesterday evening",
        "dinner with the whole team",
    ]


async def test_more_query_words_matched_ranks_higher(stores: Stores) -> None:
    await said(
        stores,
        "Miso the cat hates the dog",
        "I adopted a cat named Miso",
        "my dog barks",
        "nothing relevant here",
    )
    found = await contents(stores, "Miso cat dog?")
    assert found[0] == "Miso the cat hates the dog"
    assert set(found[1:]) == {"I adopted a cat named Miso", "my dog barks"}


async def test_stopwords_do_not_match_unless_the_query_has_nothing_else(stores: Stores) -> None:
    await said(stores, "where did you put it", "Caroline went to the lake")
    assert await contents(stores, "where did Caroline go") == ["Caroline went to the lake"]
    assert await contents(stores, "where did you") == ["where did you put it"]


async def test_equal_scores_come_newest_first_and_page(stores: Stores) -> None:
    await said(stores, *(f"note {n} about tea" for n in range(5)))
    found = await contents(stores, "tea")
    assert found == [f"note {n} about tea" for n in reversed(range(5))]
    assert await contents(stores, "tea", limit=2, offset=1) == found[1:3]
    assert await contents(stores, "tea", limit=2, offset=4) == found[4:]
    assert await contents(stores, "tea", limit=2, offset=9) == []


async def test_only_what_was_said_is_searched(stores: Stores) -> None:
    reply = ToolCall("c1", "send_message", '{"message": "Try the ramen place"}')
    await stores.history.append(
        [
            msg("a", "tool", "ramen ramen ramen", 0, tool_call_id="c0"),
            msg("a", "assistant", None, 1, tool_calls=(reply,)),
            msg("a", "system", "ramen", 2),
        ]
    )
    found = await stores.history.search("a", "ramen", limit=10)
    assert [m.spoken for m in found] == ["Try the ramen place"]


@pytest.mark.parametrize(
    "query",
    [
        '"',
        'cat"',
        '"unbalanced',
        "*",
        "cat*",
        "-cat",
        "cat -dog",
        "NEAR(cat dog)",
        "cat AND OR NOT dog",
        "(cat",
        "cat)",
        "^cat",
        "{cat}",
        "col:cat",
        "cat:*",
        "a & b | !c <-> d",
        "'; DROP TABLE messages; --",
        "\\",
        "🐈 🐶",
        "",
        "   ",
        "ÉTÉ naïve café",
        "word " * 200,
    ],
)
async def test_hostile_query_syntax_never_raises(stores: Stores, query: str) -> None:
    await said(stores, "my cat and dog", "summer café")
    await stores.history.search("a", query, limit=5)


async def test_query_syntax_is_read_as_words(stores: Stores) -> None:
    await said(stores, "my cat sleeps", "a dog barks", "near the river")
    near = {"my cat sleeps", "a dog barks", "near the river"}  # NEAR is a word here
    assert set(await contents(stores, "NEAR(cat dog)")) == near
    assert await contents(stores, "-cat") == ["my cat sleeps"]
    assert await contents(stores, "🐈") == []


async def test_search_never_crosses_agents(stores: Stores) -> None:
    await said(stores, "basil basil basil is my secret", agent="a")
    await said(stores, "a secret", agent="b")
    assert await contents(stores, "basil secret", agent="b") == ["a secret"]
    assert await contents(stores, "basil", agent="b") == []


async def test_sql_search_stems_english_words(sql_backend: Backend) -> None:
    stores = await sql_backend.open()
    try:
        await said(stores, "I adopted two cats", "she is running late")
        assert await contents(stores, "cat") == ["I adopted two cats"]
        assert await contents(stores, "runs") == ["she is running late"]
    finally:
        await stores.aclose()


# --- get_many, unindexed, mark_indexed ----------------------------------------------


async def test_get_many_keeps_the_order_of_ids_and_the_agent(stores: Stores) -> None:
    first, second, third = await said(stores, "one", "two", "three")
    [other] = await said(stores, "not yours", agent="b")
    ids = [third.id, other.id, first.id, 10_000, second.id]
    found = await stores.history.get_many("a", ids)  # type: ignore[arg-type]
    assert found == [third, first, second]
    assert await stores.history.get_many("a", []) == []


async def test_unindexed_lists_what_was_said_oldest_first(stores: Stores) -> None:
    reply = ToolCall("c1", "send_message", '{"message": "hello there"}')
    stored = await stores.history.append(
        [
            msg("a", "user", "hi", 0),
            msg("a", "tool", "tool output", 1, tool_call_id="c0"),
            msg("b", "user", "from b", 2),
            msg("a", "user", "", 3),
            msg("a", "assistant", None, 4, tool_calls=(reply,)),
            msg("a", "assistant", None, 5, tool_calls=(ToolCall("c2", "x", "{}"),)),
        ]
    )
    hi, _, from_b, _, hello, _ = stored
    assert await stores.history.unindexed(limit=10) == [hi, from_b, hello]
    assert await stores.history.unindexed(limit=2) == [hi, from_b]
    await stores.history.mark_indexed([hi.id, from_b.id])  # type: ignore[list-item]
    assert await stores.history.unindexed(limit=10) == [hello]
    await stores.history.mark_indexed([hello.id, hello.id])  # type: ignore[list-item]
    await stores.history.mark_indexed([])
    assert await stores.history.unindexed(limit=10) == []
