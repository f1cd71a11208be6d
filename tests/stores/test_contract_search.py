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


FILLER = "ok"
"""Said between the texts of `apart`: what their context holds instead of each other."""


async def said(stores: Stores, *texts: str, agent: str = "a") -> list[Message]:
    """One message per text, in order: each is the next one's context."""
    return await stores.history.append(
        [msg(agent, "user", text, minute) for minute, text in enumerate(texts)]
    )


async def apart(stores: Stores, *texts: str, agent: str = "a") -> None:
    """Like `said`, with FILLER before each text, so that each text is ranked by its own
    words only (the fillers, found by their context, are left out by `contents`)."""
    await said(stores, *(each for text in texts for each in (FILLER, text)), agent=agent)


async def scored(
    stores: Stores, query: str, agent: str = "a", limit: int = 50, offset: int = 0
) -> list[tuple[str | None, float]]:
    found = await stores.history.search(agent, query, limit=limit, offset=offset)
    scores = [score for _, score in found]
    assert all(score > 0 for score in scores) and scores == sorted(scores, reverse=True)
    return [(m.content, score) for m, score in found]


async def contents(
    stores: Stores, query: str, agent: str = "a", limit: int = 50, offset: int = 0
) -> list[str | None]:
    found = await scored(stores, query, agent, limit, offset)
    return [content for content, _ in found if content != FILLER]


async def test_rare_word_twice_ranks_above_a_common_word(stores: Stores) -> None:
    await apart(
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
    await apart(
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
    await apart(stores, "where did you put it", "Caroline went to the lake")
    assert await contents(stores, "where did Caroline go") == ["Caroline went to the lake"]
    assert await contents(stores, "where did you") == ["where did you put it"]


async def test_equal_scores_come_newest_first_and_page(stores: Stores) -> None:
    await apart(stores, *(f"note {n} about tea" for n in range(5)))
    found = await contents(stores, "tea")
    assert found == [f"note {n} about tea" for n in reversed(range(5))]
    assert await contents(stores, "tea", limit=2, offset=1) == found[1:3]
    assert await contents(stores, "tea", limit=2, offset=3) == found[3:]  # then fillers
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
    assert [m.spoken for m, _ in found] == ["Try the ramen place"]


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
    await apart(stores, "my cat sleeps", "a dog barks", "near the river")
    near = {"my cat sleeps", "a dog barks", "near the river"}  # NEAR is a word here
    assert set(await contents(stores, "NEAR(cat dog)")) == near
    assert await contents(stores, "-cat") == ["my cat sleeps"]
    assert await contents(stores, "🐈") == []


async def test_search_never_crosses_agents(stores: Stores) -> None:
    await said(stores, "basil basil basil is my secret", agent="a")
    await said(stores, "a secret", agent="b")
    assert await contents(stores, "basil secret", agent="b") == ["a secret"]
    assert await contents(stores, "basil", agent="b") == []


# --- context: what the agent's previous message said --------------------------------


async def test_the_previous_message_finds_a_reply_ranked_below_its_own_words(
    stores: Stores,
) -> None:
    await said(stores, "do you like hiking?", "yes, every summer in the Alps", "and you?")
    found = await scored(stores, "hiking")
    assert [content for content, _ in found] == [
        "do you like hiking?",
        "yes, every summer in the Alps",
    ]
    assert await contents(stores, "Alps") == ["yes, every summer in the Alps", "and you?"]


async def test_context_skips_tool_traffic_and_chains_across_batches(stores: Stores) -> None:
    reply = ToolCall("c1", "send_message", '{"message": "how nice"}')
    await stores.history.append(
        [
            msg("a", "user", "my sister lives in Lisbon", 0),
            msg("a", "assistant", None, 1, tool_calls=(ToolCall("c0", "x", "{}"),)),
            msg("a", "tool", "weather in Porto", 2, tool_call_id="c0"),
            msg("a", "assistant", None, 3, tool_calls=(reply,)),
        ]
    )
    await stores.history.append(
        [msg("a", "user", "", 4), msg("a", "user", "she moved there in May", 5)]
    )
    assert await contents(stores, "Lisbon") == ["my sister lives in Lisbon", None]
    assert await contents(stores, "nice") == [None, "she moved there in May"]
    assert await contents(stores, "Porto") == []
    assert await contents(stores, "May") == ["she moved there in May"]


async def test_context_is_the_same_agents_previous_message(stores: Stores) -> None:
    await said(stores, "a talks about quinoa", agent="a")
    await stores.history.append(
        [
            msg("b", "user", "b talks about lentils", 1),
            msg("a", "user", "a again", 2),
            msg("b", "user", "b again", 3),
        ]
    )
    assert await contents(stores, "quinoa", agent="a") == ["a talks about quinoa", "a again"]
    assert await contents(stores, "lentils", agent="a") == []
    assert await contents(stores, "lentils", agent="b") == ["b talks about lentils", "b again"]
    assert await contents(stores, "quinoa", agent="b") == []
    await stores.wipe_agent("a")
    await said(stores, "a starts over", agent="a")
    assert await contents(stores, "quinoa", agent="a") == []


async def test_sql_search_stems_english_words(sql_backend: Backend) -> None:
    stores = await sql_backend.open()
    try:
        await apart(stores, "I adopted two cats", "she is running late")
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
