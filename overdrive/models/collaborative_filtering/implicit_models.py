"""ALS and BPR for implicit feedback, trained by the `implicit` library (CPU build).

Confidence is 1 + α·log1p(|strength|), signed: implicit's ALS reads a negative entry as "shown,
not wanted" (preference 0 with that confidence), so skips and hides teach it something. BPR only
samples positives. BLAS is pinned to one thread while implicit's own thread pool trains, as
implicit asks; scoring afterwards is plain numpy.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from overdrive.domain.types import Item
from overdrive.models.collaborative_filtering.factors import (
    FactorRecommender,
    RankingRow,
    als_user_vector,
    ranking_user_vectors,
)
from overdrive.models.collaborative_filtering.matrix import InteractionMatrix
from overdrive.models.collaborative_filtering.tuning import holdout, validation_ndcg

logger = logging.getLogger(__name__)


def confidence_of(values: np.ndarray, alpha: float) -> np.ndarray:
    """sign(v) · (1 + α·log1p(|v|)), elementwise."""
    return (np.sign(values) * (1.0 + alpha * np.log1p(np.abs(values)))).astype(np.float32)


def signed_confidence(values: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    out = sp.csr_matrix(values, dtype=np.float32, copy=True)
    out.data = confidence_of(out.data, alpha)
    return out


class ALSRecommender(FactorRecommender):
    """Implicit-feedback ALS (conjugate-gradient solver); fold-in is the exact closed form."""

    name = "als"
    TUNING_GRID = (
        {"n_factors": 16, "regularization": 50.0, "alpha": 5.0},
        {"n_factors": 32, "regularization": 100.0, "alpha": 10.0},
        {"n_factors": 64, "regularization": 10.0, "alpha": 5.0},
        {"n_factors": 128, "regularization": 1.0, "alpha": 10.0},
    )

    def __init__(
        self,
        *,
        n_factors: int = 32,
        regularization: float = 50.0,
        alpha: float = 5.0,
        iterations: int = 15,
        tune: bool = False,
        seed: int = 0,
        num_threads: int = 0,
        show_progress: bool = False,
    ) -> None:
        super().__init__()
        self.tune = tune
        self.n_factors, self.regularization, self.alpha = n_factors, regularization, alpha
        self.iterations, self.seed, self.num_threads, self.show_progress = iterations, seed, num_threads, show_progress
        self._VtV_reg = np.zeros((0, 0))

    def _fit(self, matrix: InteractionMatrix, items: dict[str, Item]) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        started = time.perf_counter()
        with threadpool_limits(1, "blas"):  # implicit checks BLAS threads when the model is built
            model = AlternatingLeastSquares(
                factors=self.n_factors, regularization=self.regularization, alpha=1.0,
                iterations=self.iterations, random_state=self.seed, num_threads=self.num_threads,
            )
            model.fit(signed_confidence(matrix.values, self.alpha), show_progress=self.show_progress)
        logger.debug("als: fitted %d×%d in %.2fs", *matrix.shape, time.perf_counter() - started)
        self._U = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self._V = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._bias = np.zeros(self._V.shape[0], dtype=np.float32)
        self._prepare()

    def _prepare(self) -> None:
        V = self._V.astype(np.float64)
        self._VtV_reg = V.T @ V + self.regularization * np.eye(V.shape[1])

    def _fold_in(self, users: np.ndarray) -> None:
        vectors = []
        for u in users:
            idx, vals = self.user_row(int(u))
            vectors.append(als_user_vector(self._V, self._VtV_reg, idx, confidence_of(vals, self.alpha)))
        self._set_user_vectors(users, np.array(vectors, dtype=np.float32))

    def _restore(self, state: dict) -> None:
        super()._restore(state)
        self._prepare()

    def _config(self) -> dict:
        return {
            "n_factors": self.n_factors, "regularization": self.regularization, "alpha": self.alpha,
            "iterations": self.iterations, "tune": self.tune, "seed": self.seed, "num_threads": self.num_threads,
        }


class BPRRecommender(FactorRecommender):
    """Bayesian Personalised Ranking; implicit's last factor column is the item bias.

    Trained on one thread by default: implicit's lock-free parallel SGD is slower on two cores
    and makes runs irreproducible. Two corrections, both chosen on a holdout of the training matrix when `early_stopping` is on:
    - epochs: BPR overfits sharply once it has memorised the training pairs, at a point that
      depends on the data; NDCG@10 is checked every `check_every` epochs and the model refitted
      on everything for the best count;
    - popularity: implicit samples negatives from observed interactions, i.e. in proportion to
      popularity, so the model learns roughly log P(i|u) − log P(i); adding
      `popularity_weight` × log(1 + count) restores the popularity term it was trained to remove.
    """

    POPULARITY_GRID: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)

    name = "bpr"

    def __init__(
        self,
        *,
        n_factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 200,
        early_stopping: bool = True,
        check_every: int = 10,
        popularity_weight: float = 1.0,
        seed: int = 0,
        num_threads: int = 1,
        show_progress: bool = False,
    ) -> None:
        super().__init__()
        self.n_factors, self.learning_rate, self.regularization = n_factors, learning_rate, regularization
        self.iterations, self.early_stopping, self.check_every = iterations, early_stopping, check_every
        self.popularity_weight = popularity_weight
        self.seed, self.num_threads, self.show_progress = seed, num_threads, show_progress
        self.epochs_used = iterations
        self._mean_user = np.zeros(0, dtype=np.float32)

    def _model(self, iterations: int):
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(
            factors=self.n_factors, learning_rate=self.learning_rate, regularization=self.regularization,
            iterations=iterations, random_state=self.seed, num_threads=self.num_threads,
        )

    def _tune(self, matrix: InteractionMatrix) -> tuple[int, float]:
        """(epochs, popularity weight) with the best holdout NDCG@10. Small data sits on a popularity
        plateau for tens of epochs before it learns anything, so stopping starts after 100 epochs
        (then 4 checks without gain)."""
        split = holdout(matrix, fraction=0.2, seed=self.seed)
        if split.users.size == 0:
            return self.iterations, self.popularity_weight
        X = binary_positive(split.train)
        log_pop = np.log1p(np.asarray(X.sum(axis=0)).ravel()).astype(np.float32)
        candidates = split.candidates()
        model = self._model(self.check_every)
        best, choice, epochs, worse = -1.0, (self.check_every, self.popularity_weight), 0, 0
        started, budget = time.perf_counter(), self.tuning_budget_s
        with threadpool_limits(1, "blas"):
            while epochs < self.iterations and (worse < 4 or epochs < 100):
                if budget is not None and epochs and time.perf_counter() - started > budget:
                    break  # the best epochs seen so far
                model.fit(X, show_progress=False)
                epochs += self.check_every
                U, V = model.user_factors, model.item_factors
                gained = False
                for g in self.POPULARITY_GRID:
                    ndcg = validation_ndcg(lambda users, U=U, V=V, g=g: U[users] @ V.T + g * log_pop,
                                           split, candidates=candidates)
                    if ndcg > best:
                        best, choice, gained = ndcg, (epochs, g), True
                worse = 0 if gained else worse + 1
        logger.debug("bpr: %d epochs, popularity weight %.1f (holdout NDCG@10 %.4f)", *choice, best)
        self.tuning = {"params": {"iterations": choice[0], "popularity_weight": choice[1]}, "holdout_ndcg": round(best, 4),
                       "seconds": round(time.perf_counter() - started, 3)}
        return choice

    def _fit(self, matrix: InteractionMatrix, items: dict[str, Item]) -> None:
        if self.early_stopping:
            self.epochs_used, self.popularity_weight = self._tune(matrix)
        else:
            self.epochs_used = self.iterations
        model = self._model(self.epochs_used)
        with threadpool_limits(1, "blas"):
            model.fit(binary_positive(matrix), show_progress=self.show_progress)
        U, V = np.asarray(model.user_factors, np.float32), np.asarray(model.item_factors, np.float32)
        self._U, self._V = np.ascontiguousarray(U[:, :-1]), np.ascontiguousarray(V[:, :-1])
        # The last column is the item bias (its user side is always 1), plus the popularity term.
        self._bias = np.ascontiguousarray(V[:, -1] + self.popularity_weight * self._prior)
        self._prepare()

    def frozen_config(self) -> dict:
        return {**self._config(), "iterations": self.epochs_used, "early_stopping": False}

    def _prepare(self) -> None:
        self._mean_user = self._U.mean(axis=0) if self._U.shape[0] else np.zeros(self._V.shape[1], np.float32)

    def _fold_in(self, users: np.ndarray) -> None:
        rows = []
        for u in users:
            idx, vals = self.user_row(int(u))
            keep = vals > 0
            rows.append(RankingRow(idx[keep], np.log1p(vals[keep]), self._mean_user, int(u)))
        self._set_user_vectors(users, ranking_user_vectors(self._V, self._bias, rows))

    def _restore(self, state: dict) -> None:
        super()._restore(state)
        self._prepare()

    def _config(self) -> dict:
        return {
            "n_factors": self.n_factors, "learning_rate": self.learning_rate, "regularization": self.regularization,
            "iterations": self.iterations, "early_stopping": self.early_stopping, "check_every": self.check_every,
            "popularity_weight": self.popularity_weight, "seed": self.seed, "num_threads": self.num_threads,
        }


def binary_positive(matrix: InteractionMatrix) -> sp.csr_matrix:
    X = matrix.positive()
    X.data[:] = 1.0
    return X
