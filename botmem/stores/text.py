"""How search queries become words: one definition for every backend.

SQLite (FTS5), PostgreSQL (tsvector) and the in-memory stores all search with the terms
`query_terms` returns, so a query means the same thing everywhere. The databases then apply
their own stemming to both sides; the in-memory BM25 compares plain lowercase words.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence

from botmem.stores.base import CONVERSATION_ROLES
from botmem.types import AgentKey, Message

_WORD = re.compile(r"[^\W_]+")
"""Runs of letters and digits. Underscores and punctuation separate words, as in FTS5's
unicode61 tokenizer and PostgreSQL's parser; emoji and symbols are not words."""

MAX_QUERY_TERMS = 32
"""A pasted essay as a query must not become a thousand-way OR."""

_STOPWORDS = """
    a about am an and are as at be been but by can could did do does for from had has
    have he her him his how i if in into is it its just me my no not of on or our she so
    than that the their them then there these they this those to too us was we were what
    when where which who whom why will with would you your s t d ll m re ve
"""
STOPWORDS = frozenset(_STOPWORDS.split())
"""Words so common that they would dominate a ranking. Dropped from queries only (not from
the indexes), and only when the query has other words."""

BM25_K1 = 1.2
BM25_B = 0.75

CONTEXT_WEIGHT = 0.6
"""How much a message's context (what the agent's previous message said) counts in its
search score, against 1.0 for its own words. Every backend ranks with this one number:
FTS5 column weights, tsvector label weights, the in-memory sum."""


def is_said(message: Message) -> bool:
    """Whether a message is something said (a user or assistant message with text): only
    those are searched and embedded; tool traffic is not."""
    return message.role in CONVERSATION_ROLES and message.spoken != ""


def contexts(messages: Sequence[Message], last_said: Mapping[AgentKey, str]) -> list[str]:
    """The context of each message, in order: for a message said, the spoken text of the
    same agent's previous message said; '' for the rest (and for an agent's first message).

    `last_said` holds each agent's latest spoken text from before `messages`; within
    `messages` the chain continues in order, skipping what was not said (tool traffic).
    """
    last = dict(last_said)
    found = []
    for message in messages:
        if is_said(message):
            found.append(last.get(message.agent_key, ""))
            last[message.agent_key] = message.spoken
        else:
            found.append("")
    return found


def words(text: str) -> list[str]:
    """The lowercase words of `text`, in order, repeats kept."""
    return _WORD.findall(text.lower())


def query_terms(query: str) -> list[str]:
    """The distinct words to search for: stopwords dropped unless nothing else is left.

    The result only ever holds letters and digits, so it is safe to splice into FTS5 or
    tsquery syntax (quotes, `*`, `-`, NEAR, parentheses in the user's text are gone).
    """
    distinct = list(dict.fromkeys(words(query)))
    kept = [w for w in distinct if w not in STOPWORDS] or distinct
    return kept[:MAX_QUERY_TERMS]


def bm25_scores(documents: Sequence[Sequence[str]], terms: Sequence[str]) -> list[float]:
    """Okapi BM25 (k1=1.2, b=0.75) of each tokenised document for `terms`; 0 = no match.

    IDF is the always-positive variant ln(1 + (N - n + 0.5) / (n + 0.5)).
    """
    if not documents:
        return []
    counts = [Counter(doc) for doc in documents]
    average = sum(len(doc) for doc in documents) / len(documents) or 1.0
    idf = {term: _idf(len(documents), sum(term in c for c in counts)) for term in set(terms)}
    scores = []
    for doc, tf in zip(documents, counts, strict=True):
        norm = BM25_K1 * (1 - BM25_B + BM25_B * len(doc) / average)
        scores.append(sum(idf[t] * tf[t] * (BM25_K1 + 1) / (tf[t] + norm) for t in idf if tf[t]))
    return scores


def _idf(total: int, containing: int) -> float:
    return math.log(1 + (total - containing + 0.5) / (containing + 0.5))
