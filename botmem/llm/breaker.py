"""A circuit breaker for the primary model: while it is down, go to the fallbacks at once.

Without it every call pays the primary's retries and backoff (seconds) before a fallback
answers. After `FAILURES` calls in a row that failed on the primary (each after its own
retries), calls skip it for `cooldown` seconds; the first call after that tries it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

FAILURES = 3


class Breaker:
    def __init__(self, cooldown: float, clock: Callable[[], float] = time.monotonic):
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0

    def open_for(self) -> float:
        """Seconds the primary is still skipped (0: try it)."""
        return max(0.0, self._open_until - self._clock())

    def failed(self) -> bool:
        """Count a call that failed on the primary; True when this opens the breaker."""
        self._failures += 1
        if self._cooldown <= 0 or self._failures < FAILURES:
            return False
        self._failures = 0
        self._open_until = self._clock() + self._cooldown
        return True

    def succeeded(self) -> None:
        self._failures = 0
        self._open_until = 0.0
