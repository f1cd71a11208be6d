"""FrozenClock: time that moves only when a test says so (schedules become deterministic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FrozenClock:
    """Pass it as ``App.open(..., clock=clock)``; `advance` moves every botmem timestamp.

    The scheduler measures delays on this clock: after `advance`, ``app.scheduler.run_due()``
    runs what came due, as the timer would have.
    """

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
        if self.now.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime (e.g. tzinfo=UTC)")

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | None = None, **parts: float) -> datetime:
        """Move forward by `delta` or by timedelta keywords (hours=2); returns the new now."""
        self.now += (delta or timedelta()) + timedelta(**parts)
        return self.now
