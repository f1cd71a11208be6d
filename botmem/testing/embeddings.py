"""HashEmbedder: a tiny deterministic Embedder for tests (no model, no thread, no network).

Each lower-cased word is hashed into one of `dimensions` buckets and the counts are
L2-normalised, so texts that share words are nearer than texts that share none, and the same
text always gets the same vector, in any process. It knows no synonyms: "dog" and "puppy" are
strangers. Use it to test plumbing and ranking by shared words; use MiniLMEmbedder for meaning.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence

import numpy as np

from botmem.embeddings.base import Vectors

_WORD = re.compile(r"\w+")


def hash_vector(text: str, dimensions: int = 64) -> list[float]:
    """The L2-normalised hashed bag of words of `text` (a text without words gets a fixed one).

    Pure Python, so the fake OpenAI server can answer /v1/embeddings with the same vectors.
    """
    counts = [0.0] * dimensions
    for word in _WORD.findall(text.lower()) or [""]:
        # blake2b, not hash(): str hashes change between processes (PYTHONHASHSEED).
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        counts[int.from_bytes(digest, "little") % dimensions] += 1.0
    norm = math.sqrt(sum(c * c for c in counts))
    return [c / norm for c in counts]


class HashEmbedder:
    """An Embedder whose vectors are hashed word counts: deterministic and instant."""

    def __init__(self, dimensions: int = 64) -> None:
        self.dimensions = dimensions
        self.name = f"hash-{dimensions}"
        self.calls: list[list[str]] = []
        """The texts of each embed() call, so tests can check what was embedded, and when."""

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        vectors = [hash_vector(text, self.dimensions) for text in texts]
        return np.asarray(vectors, dtype=np.float32).reshape(len(vectors), self.dimensions)
