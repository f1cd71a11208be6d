"""The Embedder protocol: texts -> L2-normalised float32 vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
"""Shape (len(texts), dimensions), each row L2-normalised (so dot product = cosine)."""


class Embedder(Protocol):
    name: str
    """Identifies model and precision; vectors of different names are never mixed in one index."""
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed a batch (may be empty). Heavy work runs off the event loop."""
        ...
