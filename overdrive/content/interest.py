"""The query a user's content interest points along: what content scores and retrieval compare
items with.

A user's interest lives in item space as two decayed, signal-weighted sums of the embeddings of
the items they acted on (`ContentService` folds them from the user's recent signals): a long one
(half-life of days: lasting taste) and a short one (half-life of an hour: this session). Cold
items, never interacted with, have embeddings from their content alone, so they score like any
other item: that is how content ranks them.
"""

from __future__ import annotations

import numpy as np


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
