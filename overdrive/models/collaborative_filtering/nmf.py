"""Non-negative matrix factorisation (scikit-learn) of the log-confidence matrix.

NMF reconstructs observed strengths with parts-based, non-negative factors; on implicit data the
reconstruction of an unobserved cell is its score. Fold-in solves the same least-squares problem
for one user with the item factors fixed (ridge, then clipped at zero).
"""

from __future__ import annotations

import warnings

import numpy as np

from overdrive.domain.types import Item
from overdrive.models.collaborative_filtering.factors import (
    FactorRecommender,
    ridge_user_vector,
)
from overdrive.models.collaborative_filtering.matrix import (
    InteractionMatrix,
    log_confidence,
)


class NMFRecommender(FactorRecommender):
    name = "nmf"
    TUNING_GRID = ({"n_factors": 8}, {"n_factors": 16}, {"n_factors": 32})

    def __init__(
        self,
        *,
        n_factors: int = 12,
        max_iter: int = 200,
        l2: float = 0.0,
        tune: bool = False,
        seed: int = 0,
        show_progress: bool = False,
    ) -> None:
        super().__init__()
        self.tune = tune
        self.n_factors, self.max_iter, self.l2, self.seed = n_factors, max_iter, l2, seed
        self._VtV_reg = np.zeros((0, 0))

    def _fit(self, matrix: InteractionMatrix, items: dict[str, Item]) -> None:
        from sklearn.decomposition import NMF

        X = log_confidence(matrix.values)
        k = max(1, min(self.n_factors, min(X.shape) - 1 if min(X.shape) > 1 else 1))
        model = NMF(
            n_components=k, init="nndsvda", solver="cd", max_iter=self.max_iter, random_state=self.seed,
            alpha_W=self.l2, alpha_H="same", l1_ratio=0.0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: a few hundred iterations is plenty here
            W = model.fit_transform(X)
        self._U = np.ascontiguousarray(W, dtype=np.float32)
        self._V = np.ascontiguousarray(model.components_.T, dtype=np.float32)
        self._bias = np.zeros(self._V.shape[0], dtype=np.float32)
        self._prepare()

    def _prepare(self) -> None:
        V = self._V.astype(np.float64)
        self._VtV_reg = V.T @ V + max(self.l2, 1e-3) * np.eye(V.shape[1])

    def _fold_in(self, users: np.ndarray) -> None:
        vectors = []
        for u in users:
            idx, vals = self.user_row(int(u))
            keep = vals > 0
            vectors.append(ridge_user_vector(self._V, self._VtV_reg, idx[keep], np.log1p(vals[keep]), nonnegative=True))
        self._set_user_vectors(users, np.array(vectors, dtype=np.float32))

    def _restore(self, state: dict) -> None:
        super()._restore(state)
        self._prepare()

    def _config(self) -> dict:
        return {"n_factors": self.n_factors, "max_iter": self.max_iter, "l2": self.l2, "tune": self.tune, "seed": self.seed}
