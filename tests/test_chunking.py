from __future__ import annotations

import itertools
import random
import re

import pytest

from botmem.chunking import split_text


def test_short_text_is_one_piece() -> None:
    assert split_text("  hello  ", 10) == ["hello"]
    assert split_text("", 10) == [""]


def test_paragraphs_are_preferred_over_sentences_and_words() -> None:
    text = "First paragraph here.\n\nSecond one. It has two sentences."
    assert split_text(text, 40) == ["First paragraph here.", "Second one. It has two sentences."]
    assert split_text("One two three. Four five six.", 20) == ["One two three.", "Four five six."]


def test_a_break_near_the_start_does_not_make_a_tiny_piece() -> None:
    text = "Hi!\n\n" + "word " * 30
    pieces = split_text(text, 50)
    assert len(pieces[0]) > 25 and pieces[0].startswith("Hi!\n\nword")
    assert split_text("alpha beta gamma delta", 12) == ["alpha beta", "gamma delta"]


def test_only_a_word_longer_than_the_limit_is_cut() -> None:
    url = "https://example.com/" + "x" * 50
    pieces = split_text(f"see {url} now", 30)
    assert all(len(p) <= 30 for p in pieces)
    assert "".join(pieces).replace(" ", "") == f"see{url}now"


@pytest.mark.parametrize("limit", [7, 50, 2000, 4096])
def test_random_texts_keep_every_word_in_order_within_the_limit(limit: int) -> None:
    rng = random.Random(limit)
    words = ["a", "word", "longer", "sentence.", "end!", "\n", "\n\n", "x" * 9]
    for _ in range(50):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 3000)))
        pieces = split_text(text, limit)
        assert all(0 < len(p) <= limit for p in pieces) or pieces == [""]
        expected = re.sub(r"\s+", "", text)
        assert "".join(re.sub(r"\s+", "", p) for p in pieces) == expected
        if limit >= 9:  # no word is longer than the limit: no piece ends inside a word
            for before, after in itertools.pairwise(pieces):
                assert f"{before.split()[-1]} {after.split()[0]}" in " ".join(text.split())
