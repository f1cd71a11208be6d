"""What a botmem Chroma index holds, read from its collections' names and metadata: the
shard count, each space's vector size, and the embedding model. Pure bookkeeping (no
chromadb import): chroma.py reads the collections and asks this to check and remember them.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from botmem.errors import StoreError

PREFIX = "botmem"
log = logging.getLogger(__name__)


def parse_name(name: str) -> tuple[str, int] | None:
    """(space, shard) of a botmem collection name; None for collections that are not ours."""
    head, _, shard = name.rpartition("_")
    if not head.startswith(f"{PREFIX}_") or not shard.isdigit():
        return None
    return head[len(PREFIX) + 1 :], int(shard)


@dataclass
class ChromaLayout:
    shards: int
    model: str | None
    where: str
    """Names the index in errors (a path or a server URL)."""
    settled: bool = False
    """Whether the shard count is fixed: read from the index, or used to create it."""
    dimensions: dict[str, int] = field(default_factory=dict)
    spaces: set[str] = field(default_factory=set)
    """Spaces seen in the index (delete_agent re-reads them: others may add spaces)."""

    def scan(self, collections: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Learn the layout from (name, metadata) of the existing collections, checking
        them. All or nothing: a refused index leaves what was known."""
        known = copy.deepcopy(self.__dict__)
        try:
            for name, metadata in collections:
                parsed = parse_name(name)
                if parsed is not None:
                    self.remember(parsed[0], metadata, name)
        except BaseException:
            self.__dict__.update(known)
            raise

    def remember(self, space: str, metadata: dict[str, Any], name: str) -> None:
        self.spaces.add(space)
        self._adopt_shards(metadata.get("shards"), name)
        stored_model = metadata.get("model")
        if self.model is not None and stored_model is not None and stored_model != self.model:
            raise StoreError(
                f"vector index {self.where} holds vectors of model {stored_model!r}, "
                f"configured {self.model!r}: the embedding model changed; delete the index "
                "and re-embed"
            )
        dimensions = metadata.get("dimensions")
        if isinstance(dimensions, int):
            self.check_dimensions(space, dimensions)
            self.dimensions[space] = dimensions

    def check_dimensions(self, space: str, dimensions: int) -> None:
        known = self.dimensions.get(space)
        if known is not None and known != dimensions:
            raise StoreError(
                f"vectors of {dimensions} dims, index {self.where} holds {known} in space "
                f"{space!r}: the embedding model changed; delete the index and re-embed"
            )

    def forget(self) -> None:
        """Drop what was read (the client closed); the shard count stays as settled."""
        self.dimensions.clear()
        self.spaces.clear()

    def new_metadata(self, dimensions: int | None) -> dict[str, Any]:
        """The metadata of a collection this index creates."""
        metadata: dict[str, Any] = {"dimensions": dimensions, "shards": self.shards}
        if self.model is not None:
            metadata["model"] = self.model
        return metadata

    def _adopt_shards(self, stored: Any, name: str) -> None:
        """An existing index keeps the shard count it was built with (the setting applies to
        a new one): agents map to shards by that count. Two counts in one index: refused."""
        if stored is None or stored == self.shards:
            self.settled = True
            return
        if self.settled:
            raise StoreError(
                f"vector index {self.where} mixes shard counts ({name} has {stored}, others "
                f"{self.shards}): delete the index and re-embed"
            )
        log.info(
            "vector index %s was built with %s shards: keeping them (the configured %d "
            "applies to a new index)",
            self.where,
            stored,
            self.shards,
        )
        self.shards = int(stored)
        self.settled = True
