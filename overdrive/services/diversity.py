"""Feed diversity: maximal marginal relevance with an author cap, as a re-ranking of the blend.

Greedy MMR picks, at each position, the candidate maximising
``λ · relevance − (1 − λ) · max similarity to the items already picked``, with relevance min-max
scaled over the pool, so λ = 1 is the plain blend order and lower values trade relevance for
variety. Within the first `cap_window` positions at most `max_per_author` items of one author are
placed while another author's item is available. Similarity is the cosine of content embeddings
where both items have one, else of their sparse features (tags, author, media type).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from overdrive.domain.types import Item


@dataclass(frozen=True, slots=True)
class DiversityPolicy:
    mmr_lambda: float = 0.85  # 1.0: relevance only
    max_per_author: int = 3  # in the top `cap_window`; 0: no cap
    cap_window: int = 10

    @property
    def active(self) -> bool:
        return self.mmr_lambda < 1.0 or self.max_per_author > 0


def similarity_matrix(items: Sequence[Item], embeddings: Mapping[str, np.ndarray]) -> np.ndarray:
    """Pairwise cosine: content embeddings where both items have one, sparse features otherwise."""
    n = len(items)
    vectors = [embeddings.get(item.id) for item in items]
    has = np.fromiter((v is not None for v in vectors), dtype=bool, count=n)
    if has.any():
        dense = np.zeros((n, next(v for v in vectors if v is not None).shape[0]), dtype=np.float32)
        dense[has] = np.stack([v for v in vectors if v is not None])
        norms = np.linalg.norm(dense, axis=1, keepdims=True)
        dense /= np.where(norms > 0, norms, 1.0)
        if has.all():
            return dense @ dense.T
    vocab: dict[str, int] = {}
    feats = [item.features() for item in items]
    cols = [vocab.setdefault(f, len(vocab)) for fs in feats for f in fs]
    lengths = np.fromiter(map(len, feats), dtype=np.int64, count=n)
    sparse = np.zeros((n, max(1, len(vocab))), dtype=np.float32)
    sparse[np.repeat(np.arange(n), lengths), cols] = np.repeat(1.0 / np.sqrt(lengths), lengths)
    sim = sparse @ sparse.T
    if has.any():
        both = has[:, None] & has[None, :]
        sim = np.where(both, dense @ dense.T, sim)
    return sim


def diversify(
    relevance: np.ndarray,
    similarity: np.ndarray,
    authors: Sequence[str | None],
    *,
    limit: int,
    policy: DiversityPolicy,
) -> list[int]:
    """Positions into `relevance` in feed order, `limit` of them at most."""
    n = len(relevance)
    span = float(relevance.max() - relevance.min()) if n else 0.0
    rel = (relevance - relevance.min()) / span if span > 0 else np.ones(n)
    lam = policy.mmr_lambda
    closest = np.zeros(n)  # max similarity to anything picked so far
    free = np.ones(n, dtype=bool)
    per_author: dict[str, int] = {}
    full: list[str] = []  # authors at the cap
    author_ids = np.array([a if a is not None else "" for a in authors], dtype=object)
    order: list[int] = []
    while len(order) < min(limit, n):
        gain = np.where(free, lam * rel - (1.0 - lam) * closest, -np.inf)
        if full and len(order) < policy.cap_window:
            capped = free & np.isin(author_ids, full)
            if capped.sum() < free.sum():  # someone else is available: hold the capped back
                gain[capped] = -np.inf
        pick = int(np.argmax(gain))  # first maximum: ties keep the blend's order
        order.append(pick)
        free[pick] = False
        if authors[pick] is not None:
            per_author[authors[pick]] = count = per_author.get(authors[pick], 0) + 1
            if policy.max_per_author and count == policy.max_per_author:
                full.append(authors[pick])
        closest = np.maximum(closest, similarity[pick])
    return order
