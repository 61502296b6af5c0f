"""Top-k ranking metrics with binary relevance, defined as Microsoft Recommenders defines them.

For one user with recommended list r₁..r_k and relevant set R:
- precision@k = |hits| / k, recall@k = |hits| / |R|;
- NDCG@k = Σ hitᵢ / log₂(i + 1) over positions i = 1..k, divided by the same sum for an ideal
  list (min(|R|, k) hits first);
- AP = Σ_{i: hit} (hits in top i) / i, divided by |R| — Recommenders' `map` (not `map_at_k`,
  which divides by min(|R|, k)); MAP is its mean.
Each is averaged over users that have at least one relevant item. Catalog coverage is the share of
the catalog that appears in at least one user's list.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence

import numpy as np
import scipy.sparse as sp


def metrics_from_hits(hits: np.ndarray, n_relevant: np.ndarray) -> dict[str, float]:
    """Metrics from a (users, k) boolean hit matrix and each user's number of relevant items.

    Users with no relevant item are skipped. Returns ndcg, precision, recall and map.
    """
    hits = np.asarray(hits, dtype=bool)
    n_relevant = np.asarray(n_relevant, dtype=np.float64)
    keep = n_relevant > 0
    hits, n_relevant = hits[keep], n_relevant[keep]
    if hits.shape[0] == 0:
        return {"ndcg": 0.0, "precision": 0.0, "recall": 0.0, "map": 0.0}
    k = hits.shape[1]
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discount).sum(axis=1)
    ideal = np.cumsum(discount)[np.minimum(n_relevant, k).astype(int) - 1]
    n_hits = hits.sum(axis=1)
    cum = np.cumsum(hits, axis=1)
    ap = (hits * cum / np.arange(1, k + 1)).sum(axis=1) / n_relevant
    return {
        "ndcg": float((dcg / ideal).mean()),
        "precision": float((n_hits / k).mean()),
        "recall": float((n_hits / n_relevant).mean()),
        "map": float(ap.mean()),
    }


def hit_matrix(top: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """hits[u, i] = whether item top[u, i] is in row u of the boolean/positive `relevant` matrix."""
    relevant = sp.csr_matrix(relevant)
    rows = np.repeat(np.arange(top.shape[0]), top.shape[1])
    return (np.asarray(relevant[rows, top.ravel()]).ravel() > 0).reshape(top.shape)


def _hits(recommended: Sequence[Sequence[Hashable]], relevant: Sequence[Collection[Hashable]], k: int):
    hits = np.zeros((len(recommended), k), dtype=bool)
    for u, (recs, rel) in enumerate(zip(recommended, relevant, strict=True)):
        rel = set(rel)
        for i, item in enumerate(list(recs)[:k]):
            hits[u, i] = item in rel
    return hits, np.array([len(set(r)) for r in relevant])


def ranking_metrics(
    recommended: Sequence[Sequence[Hashable]], relevant: Sequence[Collection[Hashable]], *, k: int = 10
) -> dict[str, float]:
    """All four metrics from per-user recommendation lists and relevant sets (aligned by user)."""
    return metrics_from_hits(*_hits(recommended, relevant, k))


def ndcg_at_k(recommended, relevant, *, k: int = 10) -> float:
    return ranking_metrics(recommended, relevant, k=k)["ndcg"]


def precision_at_k(recommended, relevant, *, k: int = 10) -> float:
    return ranking_metrics(recommended, relevant, k=k)["precision"]


def recall_at_k(recommended, relevant, *, k: int = 10) -> float:
    return ranking_metrics(recommended, relevant, k=k)["recall"]


def mean_average_precision(recommended, relevant, *, k: int = 10) -> float:
    return ranking_metrics(recommended, relevant, k=k)["map"]


def catalog_coverage(recommended: Sequence[Sequence[Hashable]] | np.ndarray, n_items: int) -> float:
    """Distinct recommended items / catalog size."""
    if n_items <= 0:
        return 0.0
    if isinstance(recommended, np.ndarray):
        return float(np.unique(recommended[recommended >= 0]).size / n_items)
    return len({i for recs in recommended for i in recs}) / n_items
