"""User interest embeddings in item space, and the content-based score they give items.

A user's interest is a decayed, signal-weighted sum of the embeddings of the items they acted
on: ``v ← v·2^(−Δt/half_life) + w·e_item``, with `w` the signal weight (negative for skip, hide,
dislike, report, which push the profile away from such content). Two such sums per user — a long
one (half-life of days: lasting taste) and a short one (half-life of minutes to hours: this
session) — are what `content_scores` compares items with. Cold items, never interacted with,
have embeddings from their content alone, so they score like any other item: that is how
content ranks them.

Pure numpy and stateless: the caller (the feature store) keeps `InterestVector`s where it keeps
user state and calls `update` on each signal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class InterestVector:
    """An unnormalised decayed sum of item embeddings, as of `updated_at` (epoch seconds)."""

    vector: np.ndarray
    updated_at: float
    mass: float = 0.0  # decayed sum of |weights|: how much evidence stands behind the vector

    @classmethod
    def empty(cls, dim: int, *, now: float = 0.0) -> InterestVector:
        return cls(np.zeros(dim, dtype=np.float32), now, 0.0)

    def decayed(self, now: float, *, half_life_s: float) -> InterestVector:
        factor = _decay(now - self.updated_at, half_life_s)
        return InterestVector(self.vector * factor, max(now, self.updated_at), self.mass * factor)

    def update(self, item_embedding: np.ndarray, *, weight: float, at: float, half_life_s: float) -> InterestVector:
        """The vector after one signal of `weight` on an item with `item_embedding` at time `at`.

        Signals may arrive slightly out of order: an older one is added decayed to `updated_at`.
        """
        emb = np.asarray(item_embedding, dtype=np.float32)
        if at >= self.updated_at:
            base = self.decayed(at, half_life_s=half_life_s)
            return InterestVector(base.vector + weight * emb, at, base.mass + abs(weight))
        late = _decay(self.updated_at - at, half_life_s)
        return InterestVector(self.vector + late * weight * emb, self.updated_at, self.mass + late * abs(weight))


def build_interest(
    events: Iterable[tuple[np.ndarray, float, float]], *, dim: int, half_life_s: float, now: float | None = None
) -> InterestVector:
    """Fold (item_embedding, weight, timestamp) events, oldest first, into one `InterestVector`."""
    vec = InterestVector.empty(dim)
    for emb, weight, ts in events:
        vec = vec.update(emb, weight=weight, at=ts, half_life_s=half_life_s)
    return vec if now is None else vec.decayed(now, half_life_s=half_life_s)


def interest_query(
    *, long_term: np.ndarray | None, short_term: np.ndarray | None = None, short_weight: float = 0.4
) -> np.ndarray | None:
    """The unit vector a user's interest points along, or None without a profile.

    The blend of the normalised long- and short-term vectors (`short_weight` for the short one
    when both exist). Use it as the query for `VectorIndex.search` to retrieve candidates.
    """
    parts, weights = [], []
    for vec, w in ((long_term, 1.0 - short_weight), (short_term, short_weight)):
        if vec is not None and (norm := float(np.linalg.norm(vec))) > 0:
            parts.append(np.asarray(vec, dtype=np.float32) / norm)
            weights.append(w)
    if not parts or sum(weights) <= 0:
        return None
    query = sum(w * p for w, p in zip(weights, parts)) / sum(weights)
    norm = float(np.linalg.norm(query))
    return None if norm == 0 else (query / norm).astype(np.float32)


def content_scores(
    item_embeddings: np.ndarray,
    *,
    long_term: np.ndarray | None,
    short_term: np.ndarray | None = None,
    short_weight: float = 0.4,
) -> np.ndarray | None:
    """Cosine of each item (rows) with `interest_query(...)`, in [-1, 1]; None without a profile.

    Items with a zero embedding (no usable content) score 0.
    """
    query = interest_query(long_term=long_term, short_term=short_term, short_weight=short_weight)
    if query is None:
        return None
    mat = np.atleast_2d(np.asarray(item_embeddings, dtype=np.float32))
    item_norms = np.linalg.norm(mat, axis=1)
    sims = (mat @ query) / np.where(item_norms > 0, item_norms, 1.0)
    return np.clip(sims, -1.0, 1.0)


def _decay(elapsed_s: float, half_life_s: float) -> float:
    if half_life_s <= 0:
        raise ValueError("half_life_s must be > 0")
    return float(0.5 ** (max(elapsed_s, 0.0) / half_life_s))
