"""Split a long reply into messages a platform accepts, at the most natural boundary."""

from __future__ import annotations

import re

# Boundaries from best to worst: paragraph, line, sentence end, word.
_BOUNDARIES = (
    re.compile(r"\n\s*\n"),
    re.compile(r"\n"),
    re.compile(r"(?<=[.!?…])\s+"),
    re.compile(r"\s+"),
)


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters; nothing dropped except whitespace at the cuts.

    A word longer than `limit` (a URL, say) is the only thing ever cut inside.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut, resume = _cut(rest, limit)
        pieces.append(rest[:cut].rstrip())
        rest = rest[resume:].lstrip()
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def _cut(text: str, limit: int) -> tuple[int, int]:
    """Where the first piece ends and where the next one starts."""
    window = text[: limit + 1]  # a boundary right after the limit still counts
    for boundary in _BOUNDARIES:
        # a paragraph or sentence break only wins when it leaves a piece worth sending
        shortest = 1 if boundary is _BOUNDARIES[-1] else max(1, limit // 2)
        matches = [m for m in boundary.finditer(window) if shortest <= m.start() <= limit]
        if matches:
            last = matches[-1]
            return last.start(), last.end()
    return limit, limit
