"""Blend members by weights they earn on held-out data, never by hand.

Members score on different scales (log-popularity, dot products, similarity sums), so each
member's scores are z-scored per user over the candidate set before blending. Weights are fitted
by coordinate ascent on validation NDCG@k, starting from the best single member with weight 1:
every accepted step strictly improves validation NDCG, so the blend is never worse than the best
member on validation — if nothing helps, the "ensemble" is that member alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from overdrive.models.metrics import hit_matrix, metrics_from_hits

WEIGHT_GRID: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0)


def zscore_rows(scores: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
    """Per-row (score − mean) / std over the candidate entries; other entries become 0.
    A row whose candidates all score the same becomes 0 (the member abstains for that user)."""
    scores = np.asarray(scores, dtype=np.float32)
    if candidates is None:
        mean = scores.mean(axis=-1, keepdims=True)
        std = scores.std(axis=-1, keepdims=True)
        return np.where(std > 1e-12, (scores - mean) / np.maximum(std, 1e-12), 0.0).astype(np.float32)
    n = np.maximum(candidates.sum(axis=-1, keepdims=True), 1)
    masked = np.where(candidates, scores, 0.0)
    mean = masked.sum(axis=-1, keepdims=True) / n
    var = np.where(candidates, (scores - mean) ** 2, 0.0).sum(axis=-1, keepdims=True) / n
    std = np.sqrt(var)
    out = np.where(candidates & (std > 1e-12), (scores - mean) / np.maximum(std, 1e-12), 0.0)
    return out.astype(np.float32)


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """(rows, k) column indices of the k best entries per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def blend(zscores: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Σ weight × z-scored member scores (members with weight 0 are skipped)."""
    out: np.ndarray | None = None
    for name, w in weights.items():
        if w > 0:
            term = w * zscores[name]
            out = term if out is None else out + term
    if out is None:
        return np.zeros_like(next(iter(zscores.values())))
    return out


@dataclass(slots=True)
class EnsembleWeights:
    """Fitted weights plus the validation evidence behind them."""

    weights: dict[str, float]
    validation_ndcg: dict[str, float] = field(default_factory=dict)  # per member, plus "ensemble"
    best_member: str = ""
    n_validation_users: int = 0

    @property
    def is_blend(self) -> bool:
        return sum(1 for w in self.weights.values() if w > 0) > 1


def fit_weights(
    zscores: Mapping[str, np.ndarray],
    candidates: np.ndarray,
    relevant: sp.csr_matrix,
    *,
    k: int = 10,
    rounds: int = 3,
    grid: tuple[float, ...] = WEIGHT_GRID,
) -> EnsembleWeights:
    """Coordinate ascent on validation NDCG@k over non-negative weights (normalised to sum 1).

    `zscores[name]` are (users, items) z-scored member scores; `candidates` marks the items each
    validation user may be recommended; `relevant` the held-out positives.
    """
    names = list(zscores)
    n_relevant = np.asarray((relevant > 0).sum(axis=1)).ravel()

    def ndcg(blended: np.ndarray) -> float:
        top = top_k_indices(np.where(candidates, blended, -np.inf), k)
        return metrics_from_hits(hit_matrix(top, relevant), n_relevant)["ndcg"]

    member_ndcg = {n: ndcg(zscores[n]) for n in names}
    best = max(names, key=lambda n: (member_ndcg[n], -names.index(n)))
    weights = {n: 1.0 if n == best else 0.0 for n in names}
    current = zscores[best].astype(np.float32, copy=True)
    score = member_ndcg[best]
    for _ in range(rounds):
        improved = False
        for name in names:
            z, w_now = zscores[name], weights[name]
            for g in grid:
                if g == w_now or (name == best and g == 0.0 and sum(weights.values()) == w_now):
                    continue
                trial = current + (g - w_now) * z
                s = ndcg(trial)
                if s > score + 1e-6:
                    score, current, w_now, improved = s, trial, g, True
            weights[name] = w_now
        if not improved:
            break
    total = sum(weights.values())
    weights = {n: w / total for n, w in weights.items()}
    return EnsembleWeights(
        weights=weights,
        validation_ndcg={**member_ndcg, "ensemble": score},
        best_member=best,
        n_validation_users=int((n_relevant > 0).sum()),
    )
