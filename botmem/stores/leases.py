"""Leases: which process holds an agent (its turns) or a background role, and until when.

Several botmem processes share one database. A lease is a row naming its holder and an
expiry; the holder renews it while it works, and a holder that dies stops renewing, so its
lease runs out and another process takes over. Time is the wall clock of the processes
(keep their clocks in sync, e.g. NTP), never a test's frozen clock: leases are about real
processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

WallClock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


class LeaseStore(Protocol):
    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        """Take the lease for `ttl` seconds if it is free, expired or already `holder`'s."""
        ...

    async def renew(self, names: Sequence[str], holder: str, ttl: float) -> set[str]:
        """Extend `holder`'s leases by `ttl` seconds; returns the names it still holds."""
        ...

    async def release(self, names: Sequence[str], holder: str) -> None:
        """Give up `holder`'s leases (others' are left alone)."""
        ...

    async def holder(self, name: str) -> str | None:
        """Who holds the lease now (None: nobody, or it ran out)."""
        ...


class MemoryLeaseStore:
    """Leases in process memory (one process: what the SQL store does across processes)."""

    def __init__(self, clock: WallClock = wall_clock):
        self._clock = clock
        self._leases: dict[str, tuple[str, datetime]] = {}

    def live(self, name: str, at: datetime | None = None) -> bool:
        lease = self._leases.get(name)
        return lease is not None and lease[1] > (at or self._clock())

    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        if self.live(name) and self._leases[name][0] != holder:
            return False
        self._leases[name] = (holder, self._clock() + timedelta(seconds=ttl))
        return True

    async def renew(self, names: Sequence[str], holder: str, ttl: float) -> set[str]:
        until = self._clock() + timedelta(seconds=ttl)
        kept = {name for name in names if self._leases.get(name, ("",))[0] == holder}
        for name in kept:
            self._leases[name] = (holder, until)
        return kept

    async def release(self, names: Sequence[str], holder: str) -> None:
        for name in names:
            if self._leases.get(name, ("",))[0] == holder:
                del self._leases[name]

    async def holder(self, name: str) -> str | None:
        return self._leases[name][0] if self.live(name) else None
