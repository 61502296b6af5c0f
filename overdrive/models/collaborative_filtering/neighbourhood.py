"""User-user and item-item nearest neighbours, with cosine or BM25-weighted similarity.

- item-item: score(u, j) = Σ_i r_ui · sim(i, j) over the top-k neighbours of each item.
- user-user: score(u, j) = Σ_v sim(u, v) · r_vj over u's top-k most similar users.

BM25 treats each vector as a document: rare co-occurrences (a user who interacted with few items,
an item few users touched) count more and long vectors are length-normalised — the weighting
that makes implicit's BM25Recommender beat plain cosine on popularity-skewed data. Both read the
user's current row at scoring time, so fold-in is free.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from overdrive.domain.types import Item
from overdrive.models.collaborative_filtering.base import BaseRecommender
from overdrive.models.collaborative_filtering.matrix import (
    InteractionMatrix,
    log_confidence,
    normalize_rows,
)


def bm25_weight(docs: sp.csr_matrix, *, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """BM25 term weights of a documents × terms matrix (rows are documents)."""
    docs = sp.csr_matrix(docs, dtype=np.float32, copy=True)
    n_docs = docs.shape[0]
    df = np.bincount(docs.indices, minlength=docs.shape[1])
    idf = np.log((n_docs - df + 0.5) / (df + 0.5) + 1.0).astype(np.float32)
    length = np.asarray(docs.sum(axis=1)).ravel()
    avg = float(length.mean()) if length.size and length.mean() > 0 else 1.0
    row_of = np.repeat(np.arange(n_docs), np.diff(docs.indptr))
    tf = docs.data
    docs.data = tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * length[row_of] / avg)) * idf[docs.indices]
    return docs


def top_k_per_row(sim: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row (ties broken by position)."""
    sim = sp.csr_matrix(sim)
    data, indices, indptr = [], [], [0]
    for r in range(sim.shape[0]):
        s, e = sim.indptr[r], sim.indptr[r + 1]
        vals, cols = sim.data[s:e], sim.indices[s:e]
        if vals.size > k:
            keep = np.argpartition(-vals, k - 1)[:k]
            vals, cols = vals[keep], cols[keep]
        data.append(vals)
        indices.append(cols)
        indptr.append(indptr[-1] + vals.size)
    return sp.csr_matrix(
        (np.concatenate(data) if data else [], np.concatenate(indices) if indices else [], indptr), shape=sim.shape
    )


class NeighbourhoodRecommender(BaseRecommender):
    name = "neighbourhood"
    TUNING_GRID = ({"k": 50}, {"k": 200}, {"k": 500})

    def __init__(self, *, kind: str = "item", weighting: str = "cosine", k: int = 200, tune: bool = False) -> None:
        super().__init__()
        self.tune = tune
        if kind not in ("item", "user") or weighting not in ("cosine", "bm25"):
            raise ValueError("kind must be 'item' or 'user'; weighting 'cosine' or 'bm25'")
        self.kind, self.weighting, self.k = kind, weighting, k
        self._sim = sp.csr_matrix((0, 0), dtype=np.float32)  # item-item: items × items (col j = neighbours of j)
        self._user_vecs = sp.csr_matrix((0, 0), dtype=np.float32)  # user-user: weighted, L2-normalised rows
        self._idf = np.zeros(0, dtype=np.float32)
        self._train = sp.csr_matrix((0, 0), dtype=np.float32)  # user-user: neighbours' rows to sum

    def _weighted(self, X: sp.csr_matrix) -> sp.csr_matrix:
        return bm25_weight(X) if self.weighting == "bm25" else sp.csr_matrix(X, dtype=np.float32)

    def _fit(self, matrix: InteractionMatrix, items: dict[str, Item]) -> None:
        X = log_confidence(matrix.values)
        if self.kind == "item":
            item_vecs = normalize_rows(self._weighted(sp.csr_matrix(X.T)), norm="l2")
            sim = (item_vecs @ item_vecs.T).tocsr()
            sim.setdiag(0.0)
            sim.eliminate_zeros()
            self._sim = top_k_per_row(sim, self.k).T.tocsr().astype(np.float32)
        else:
            # IDF of items for user vectors, kept so folded-in users are weighted the same way.
            n_users = max(X.shape[0], 1)
            df = np.bincount(X.indices, minlength=X.shape[1])
            self._idf = np.log((n_users - df + 0.5) / (df + 0.5) + 1.0).astype(np.float32)
            self._user_vecs = self._user_weights(X)
            self._train = X

    def _user_weights(self, X: sp.csr_matrix) -> sp.csr_matrix:
        if self.weighting == "bm25":
            X = sp.csr_matrix(X, dtype=np.float32, copy=True)
            X.data = X.data * self._idf[X.indices]
        return normalize_rows(X, norm="l2").astype(np.float32)

    def _score_rows(self, users: np.ndarray) -> np.ndarray:
        X = log_confidence(self.user_matrix(users))
        if self.kind == "item":
            return np.asarray((X @ self._sim).toarray(), dtype=np.float32)
        q = self._user_weights(X)
        sims = (q @ self._user_vecs.T).toarray()
        base = self._user_vecs.shape[0]
        for row, u in enumerate(users):
            if u < base:
                sims[row, u] = 0.0  # not your own neighbour
        k = min(self.k, sims.shape[1])
        if k < sims.shape[1]:
            cut = np.partition(sims, sims.shape[1] - k, axis=1)[:, sims.shape[1] - k][:, None]
            sims = np.where(sims >= cut, sims, 0.0)
        return np.asarray((sp.csr_matrix(sims.astype(np.float32)) @ self._train).toarray(), dtype=np.float32)

    def _state(self) -> dict:
        return {"sim": self._sim, "user_vecs": self._user_vecs, "idf": self._idf, "train": self._train}

    def _restore(self, state: dict) -> None:
        self._sim, self._user_vecs, self._idf = state["sim"], state["user_vecs"], state["idf"]
        self._train = state["train"]

    def _config(self) -> dict:
        return {"kind": self.kind, "weighting": self.weighting, "k": self.k, "tune": self.tune}
