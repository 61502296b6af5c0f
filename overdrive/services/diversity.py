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
        dense[has] = np.array([v for v in vectors if v is not None])
        norms = np.sqrt(np.einsum("ij,ij->i", dense, dense))
        dense /= np.where(norms > 0, norms, 1.0)[:, None]
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
    if n == 0:
        return []
    span = float(relevance.max() - relevance.min())
    lam = policy.mmr_lambda
    gain = lam * ((relevance - relevance.min()) / span if span > 0 else np.ones(n))
    penalties = (1.0 - lam) * np.asarray(similarity, dtype=np.float64)
    penalty = np.zeros(n)  # (1 − λ) × max similarity to anything picked; +inf once picked
    codes: dict[str, int] = {}  # authors as small ints: masks instead of string comparisons
    author_of = np.fromiter((-1 if a is None else codes.setdefault(a, len(codes)) for a in authors),
                            dtype=np.int64, count=n)
    per_author = [0] * len(codes)
    capped = np.zeros(n, dtype=bool)  # items of authors at the cap
    order: list[int] = []
    for position in range(min(limit, n)):
        score = gain - penalty
        pick = int(score.argmax())  # first maximum: ties keep the blend's order
        if capped[pick] and position < policy.cap_window:  # someone else available? take them
            held = np.where(capped, -np.inf, score)
            other = int(held.argmax())
            pick = other if held[other] > -np.inf else pick
        order.append(pick)
        np.maximum(penalty, penalties[pick], out=penalty)
        penalty[pick] = np.inf
        author = author_of[pick]
        if author >= 0:
            per_author[author] += 1
            if policy.max_per_author and per_author[author] == policy.max_per_author:
                capped |= author_of == author
    return order
