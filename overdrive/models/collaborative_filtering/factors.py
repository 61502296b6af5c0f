"""Shared machinery of latent-factor models: dot-product scoring and user fold-in.

A factor model scores `user_vec · item_vec (+ item_bias)`. Folding a user in keeps every item
vector fixed and solves only for the user's vector, so it costs O(k³ + |row|·k²) — micro- to
milliseconds — instead of a refit:
- `als_user_vector` — the exact implicit-ALS closed form (Hu, Koren & Volinsky 2008);
- `ridge_user_vector` — least squares on the row (NMF's objective, unconstrained then clipped);
- `ranking_user_vectors` — a few hundred vectorised BPR steps for models trained on a ranking loss
  (BPR, LightFM WARP), whose vectors live on a different scale from a least-squares fit, taken
  for many users at once (a fold-in's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from overdrive.models.collaborative_filtering.base import BaseRecommender


class FactorRecommender(BaseRecommender):
    """Holds user vectors `_U` (n_users, k), item vectors `_V` (n_items, k) and item biases."""

    def __init__(self) -> None:
        super().__init__()
        self._U = np.zeros((0, 0), dtype=np.float32)
        self._V = np.zeros((0, 0), dtype=np.float32)
        self._bias = np.zeros(0, dtype=np.float32)

    def _score_rows(self, users: np.ndarray) -> np.ndarray:
        return self._U[users] @ self._V.T + self._bias

    def _score_items(self, u: int, items: np.ndarray) -> np.ndarray:
        return self._V[items] @ self._U[u] + self._bias[items]

    def _set_user_vectors(self, users: np.ndarray, vectors: np.ndarray) -> None:
        """Write fold-in vectors, growing `_U` for new users (one copy per batch, then swap)."""
        needed = int(users.max()) + 1
        U = self._U
        if needed > U.shape[0]:
            U = np.vstack([U, np.zeros((needed - U.shape[0], U.shape[1]), dtype=U.dtype)])
        else:
            U = U.copy() if len(users) > 1 else U
        U[users] = vectors
        self._U = U

    def _state(self) -> dict[str, np.ndarray | sp.csr_matrix]:
        return {"U": self._U, "V": self._V, "bias": self._bias}

    def _restore(self, state: dict) -> None:
        self._U, self._V, self._bias = state["U"], state["V"], state["bias"]


def als_user_vector(
    V: np.ndarray, VtV_reg: np.ndarray, idx: np.ndarray, confidence: np.ndarray
) -> np.ndarray:
    """x = (VᵀV + λI + Vᵢᵀ(Cᵢ − 1)Vᵢ)⁻¹ Vᵢᵀ Cᵢ pᵢ, with p = 1 where confidence > 0.

    `confidence` is signed like implicit's input: a negative entry is negative feedback with
    confidence |c| and preference 0. `VtV_reg` = VᵀV + λI, precomputed once per model.
    """
    if idx.size == 0:
        return np.zeros(V.shape[1], dtype=V.dtype)
    Y = V[idx].astype(np.float64)
    c = np.abs(confidence).astype(np.float64)
    A = VtV_reg + (Y * (c - 1.0)[:, None]).T @ Y
    b = Y.T @ np.where(confidence > 0, c, 0.0)
    return np.linalg.solve(A, b).astype(V.dtype)


def ridge_user_vector(V: np.ndarray, VtV_reg: np.ndarray, idx: np.ndarray, values: np.ndarray, *, nonnegative: bool) -> np.ndarray:
    """argmin_x ‖r − xVᵀ‖² + λ‖x‖² for a sparse row r (zeros elsewhere)."""
    if idx.size == 0:
        return np.zeros(V.shape[1], dtype=V.dtype)
    x = np.linalg.solve(VtV_reg, V[idx].astype(np.float64).T @ values.astype(np.float64))
    return (np.maximum(x, 0.0) if nonnegative else x).astype(V.dtype)


class RankingRow(NamedTuple):
    """One user's part in `ranking_user_vectors`: their positive items, optional weights of them,
    the vector to start from and the seed their pairs are drawn from."""

    positives: np.ndarray
    weights: np.ndarray | None
    start: np.ndarray
    seed: int


def ranking_user_vectors(V: np.ndarray, bias: np.ndarray, rows: Sequence[RankingRow], *, steps: int = 150,
                         batch: int = 64, learning_rate: float = 0.1, regularization: float = 0.01,
                         chunk: int = 64) -> np.ndarray:
    """Stochastic BPR on each user's vector with item vectors frozen: push positives above random
    items. Each starts from its `start` (the population's mean user vector works well); positives
    are drawn in proportion to their weights (e.g. log-confidence), so stronger evidence pulls
    harder. The step is divided by the mean squared item norm, so a step moves margins by about
    `learning_rate` whatever scale the model's vectors have. Each user's pairs come from their own
    seed, so a user gets the same vector whoever else is folded in; each step is taken for up to
    `chunk` users together — a fold-in of hundreds of users is a few hundred array steps, not a few
    hundred per user."""
    out = np.empty((len(rows), V.shape[1]), dtype=V.dtype)
    step = learning_rate / max(float(np.mean(np.einsum("ij,ij->i", V, V))), 1e-6)
    shrink = np.float32(1.0 - learning_rate * regularization)
    for lo in range(0, len(rows), chunk):
        part = rows[lo:lo + chunk]
        x = np.stack([r.start.astype(np.float32) for r in part])
        active = [j for j, r in enumerate(part) if r.positives.size]
        if active:
            drawn = [_pairs(part[j], V.shape[0], steps, batch) for j in active]
            p, q, valid = (np.stack(column) for column in zip(*drawn, strict=True))  # (users, steps, batch)
            if len(active) == 1:  # one user alone (a fold-in on demand)
                x[active[0]] = _one_user_steps(V, bias, p[0], q[0], valid[0], x[active[0]], step, shrink)
            else:
                xa = x[active]
                for s in range(steps):
                    diff = (V[p[:, s]] - V[q[:, s]]).astype(np.float32, copy=False)  # (users, batch, k)
                    margin = np.einsum("ubk,uk->ub", diff, xa) + (bias[p[:, s]] - bias[q[:, s]])
                    g = valid[:, s] / (1.0 + np.exp(np.minimum(margin, 50.0)))  # sigmoid(-margin), masked
                    xa = xa * shrink + np.float32(step) * np.einsum("ub,ubk->uk", g, diff).astype(np.float32, copy=False)
                x[active] = xa
        out[lo:lo + len(part)] = x
    return out


def _one_user_steps(V: np.ndarray, bias: np.ndarray, p: np.ndarray, q: np.ndarray, valid: np.ndarray,
                    x: np.ndarray, step: float, shrink: np.float32) -> np.ndarray:
    """`ranking_user_vectors`' steps for a single user: the same arithmetic on 2-D arrays, in half
    the calls — for one user the steps' cost is the calls' overhead, not the arithmetic."""
    x = x.astype(np.float32, copy=True)
    gap = bias[p] - bias[q]
    for s in range(p.shape[0]):
        diff = (V[p[s]] - V[q[s]]).astype(np.float32, copy=False)  # (batch, k)
        g = valid[s] * expit(-(diff @ x + gap[s]))  # sigmoid(-margin), masked
        x *= shrink
        x += np.float32(step) * (g @ diff)
    return x


def _pairs(row: RankingRow, n_items: int, steps: int, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A user's (positive, random item) pairs for every step, drawn from their seed, and each
    pair's weight in the step (0 where the random item is one of their positives)."""
    rng = np.random.default_rng(row.seed)
    positives = row.positives
    if row.weights is None:
        p = positives[rng.integers(positives.size, size=(steps, batch))]
    else:
        w = np.asarray(row.weights, dtype=np.float64)
        p = positives[rng.choice(positives.size, size=(steps, batch), p=w / w.sum())]
    q = rng.integers(n_items, size=(steps, batch))
    is_positive = np.zeros(n_items, dtype=bool)
    is_positive[positives] = True
    return p, q, (~is_positive[q]).astype(np.float32) / batch  # a "negative" the user liked is skipped
