"""Validation carved from training data: how members choose epochs and the ensemble its weights.

Nothing here sees evaluation test data: the holdout is taken from whatever matrix `fit` got.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from overdrive.models.metrics import hit_matrix, metrics_from_hits
from overdrive.models.splits import stratified_split
from overdrive.models.collaborative_filtering.matrix import InteractionMatrix


@dataclass(frozen=True, slots=True)
class Holdout:
    """A training matrix with some positives of some users held out for validation."""

    train: InteractionMatrix
    relevant: sp.csr_matrix  # validation users × items (rows follow `users`)
    users: np.ndarray  # user indices (of `train`) that have held-out positives

    def candidates(self) -> np.ndarray:
        """(len(users), n_items) True where an item is not in the user's training row."""
        mask = np.ones((self.users.size, self.train.shape[1]), dtype=bool)
        rows = self.train.values[self.users]
        mask[np.repeat(np.arange(self.users.size), np.diff(rows.indptr)), rows.indices] = False
        return mask


def holdout(
    matrix: InteractionMatrix, *, fraction: float = 0.2, max_users: int = 1500, seed: int = 0, min_rows: int = 3
) -> Holdout:
    """Per-user stratified holdout of `fraction` of the rows of up to `max_users` users.

    Only users with at least `min_rows` rows lend validation data; everyone else trains in full.
    Held-out rows with positive strength are the validation relevant set.
    """
    X = matrix.values.tocoo()
    counts = np.diff(matrix.values.indptr)
    eligible = np.flatnonzero(counts >= min_rows)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(eligible, size=min(max_users, eligible.size), replace=False)) if eligible.size else eligible
    in_chosen = np.isin(X.row, chosen)
    rows = np.flatnonzero(in_chosen)
    _, held = stratified_split(X.row[rows], ratio=1.0 - fraction, seed=seed)
    held = rows[held]
    keep = np.ones(X.nnz, dtype=bool)
    keep[held] = False
    train_values = sp.csr_matrix((X.data[keep], (X.row[keep], X.col[keep])), shape=matrix.shape, dtype=np.float32)
    train = InteractionMatrix(list(matrix.user_ids), list(matrix.item_ids), train_values, matrix.now,
                              dict(matrix.user_index), dict(matrix.item_index))
    pos = held[X.data[held] > 0]
    rel_full = sp.csr_matrix((np.ones(pos.size, np.float32), (X.row[pos], X.col[pos])), shape=matrix.shape)
    users = np.flatnonzero(np.diff(rel_full.indptr) > 0)
    return Holdout(train, rel_full[users], users)


def validation_ndcg(
    score_rows: Callable[[np.ndarray], np.ndarray], split: Holdout, *, k: int = 10, candidates: np.ndarray | None = None
) -> float:
    """NDCG@k of a batch scorer on the holdout, over items unseen in its training part."""
    from overdrive.models.collaborative_filtering.ensemble import top_k_indices

    if split.users.size == 0:
        return 0.0
    mask = split.candidates() if candidates is None else candidates
    scores = np.where(mask, score_rows(split.users), -np.inf)
    top = top_k_indices(scores, k)
    return metrics_from_hits(hit_matrix(top, split.relevant), np.diff(split.relevant.indptr))["ndcg"]
