"""Lists the way Letta's client pages them: `limit`, `before`/`after` cursors by id, `order`.

The client asks for the next page with ``after=<id of the last item>`` (``before=`` when
paging backwards) and stops at an empty page, so a cursor must always move forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

from fastapi import Query

T = TypeVar("T")
Order = Literal["asc", "desc"]
MAX_LIMIT = 1000


class Page:
    """The paging query parameters of a list route (use as a FastAPI dependency)."""

    def __init__(
        self,
        limit: int = Query(50, ge=1, le=MAX_LIMIT, description="Items per page."),
        before: str | None = Query(None, description="Items before this id (in `order`)."),
        after: str | None = Query(None, description="Items after this id (in `order`)."),
        order: Order = Query("desc", description="asc: oldest first; desc: newest first."),
    ):
        self.limit = limit
        self.before = before
        self.after = after
        self.order = order

    def apply(self, items: Sequence[T], id_of: Callable[[T], str]) -> list[T]:
        """`items` oldest first -> this page. An unknown cursor gives an empty page."""
        ordered = list(items) if self.order == "asc" else list(reversed(items))
        ids = [id_of(item) for item in ordered]
        start, end = 0, len(ordered)
        if self.after is not None:
            start = ids.index(self.after) + 1 if self.after in ids else len(ordered)
        if self.before is not None:
            end = ids.index(self.before) if self.before in ids else 0
        window = ordered[start:end]
        if self.before is not None and self.after is None:
            return window[-self.limit :]  # the page just before the cursor
        return window[: self.limit]
