"""Block ids that sort by age: the blocks table has no creation time, and lists page by id.

An id is a UUID version 7 (RFC 9562) as 32 hex digits: 48 bits of milliseconds since the
epoch, then random bits. Ordering blocks by id orders them by creation (blocks made before
these ids, with random UUID4 ids, sort among them arbitrarily but stably).
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

_MS_BITS = 48
_RANDOM_A_BITS = 12
_RANDOM_B_BITS = 62


def new_block_id(now: datetime) -> str:
    """A fresh block id for a block made at `now` (the store's clock)."""
    ms = int(now.timestamp() * 1000) & ((1 << _MS_BITS) - 1)
    value = (
        ms << 80
        | 0x7 << 76  # version 7
        | secrets.randbits(_RANDOM_A_BITS) << 64
        | 0b10 << 62  # the RFC variant
        | secrets.randbits(_RANDOM_B_BITS)
    )
    return uuid.UUID(int=value).hex
