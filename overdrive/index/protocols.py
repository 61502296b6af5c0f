"""The vector-search seam: `VectorIndex`, over L2-normalised item embeddings."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class VectorIndex(Protocol):
    """Nearest-neighbour search by cosine similarity, keyed by item id.

    `upsert` adds or replaces (an id appears at most once); `remove` is a no-op for unknown ids.
    `search` returns up to `k` (id, cosine) pairs, best first, skipping ids in `exclude`;
    `get`, `get_many` and `rows` return the stored vectors, L2-normalised on the way in.
    `save` persists atomically — a crash mid-save leaves the previous saved state loadable.
    """

    @property
    def dim(self) -> int: ...

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None: ...

    def remove(self, item_id: str) -> bool: ...

    def search(self, vector: np.ndarray, k: int, *, exclude: Collection[str] = ()) -> list[tuple[str, float]]: ...

    def get(self, item_id: str) -> np.ndarray | None: ...

    def get_many(self, item_ids: Sequence[str]) -> dict[str, np.ndarray]: ...

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """The vectors of `item_ids` as one (len(item_ids), dim) matrix; zero rows for ids without one."""

    def __contains__(self, item_id: object) -> bool: ...

    def __len__(self) -> int: ...

    def save(self) -> None: ...
