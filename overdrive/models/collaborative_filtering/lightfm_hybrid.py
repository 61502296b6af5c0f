"""LightFM hybrid (lightfm-next): users and items are sums of feature embeddings, trained with WARP.

Item features: an identity feature plus the catalog's content (tags, author, type and, with
`text_words`, text words; see `content.ItemFeaturizer`). User features: an identity feature plus
the `profile_features` strongest content features of the items the user liked. Training cost
grows with features per row, which is why both are capped. The number of epochs is chosen on a
holdout of the training matrix (`early_stopping`), as WARP overfits small data. Both halves matter when the data changes without a retrain:
- a new item is scored from its content features alone, natively;
- folding a user in recomputes their content profile and re-sums their feature embeddings —
  exactly the representation LightFM would give that feature vector.
Scoring uses the summed representations with numpy, so serving needs no LightFM call.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from overdrive.domain.types import Item
from overdrive.models.collaborative_filtering.content import ItemFeaturizer
from overdrive.models.collaborative_filtering.factors import (
    FactorRecommender,
    RankingRow,
    ranking_user_vectors,
)
from overdrive.models.collaborative_filtering.matrix import (
    InteractionMatrix,
    normalize_rows,
)
from overdrive.models.collaborative_filtering.neighbourhood import top_k_per_row
from overdrive.models.collaborative_filtering.tuning import holdout, validation_ndcg

logger = logging.getLogger(__name__)


class LightFMRecommender(FactorRecommender):
    name = "lightfm"

    def __init__(
        self,
        *,
        n_factors: int = 32,
        loss: str = "warp",
        epochs: int = 60,
        early_stopping: bool = True,
        check_every: int = 5,
        learning_rate: float = 0.05,
        item_alpha: float = 1e-6,
        user_alpha: float = 1e-6,
        content_weight: float = 1.0,
        profile_weight: float = 0.5,
        profile_features: int = 16,
        text_words: int = 0,
        max_sampled: int = 30,
        seed: int = 0,
        num_threads: int = 1,
        show_progress: bool = False,
    ) -> None:
        super().__init__()
        self.n_factors, self.loss, self.epochs, self.learning_rate = n_factors, loss, epochs, learning_rate
        self.item_alpha, self.user_alpha, self.max_sampled = item_alpha, user_alpha, max_sampled
        self.content_weight, self.profile_weight = content_weight, profile_weight
        self.early_stopping, self.check_every = early_stopping, check_every
        self.profile_features, self.text_words = profile_features, text_words
        self.epochs_used = epochs
        self.seed, self.num_threads, self.show_progress = seed, num_threads, show_progress
        self._featurizer = ItemFeaturizer()
        self._content = sp.csr_matrix((0, 0), dtype=np.float32)  # known items × content features
        self._item_emb = np.zeros((0, 0), dtype=np.float32)  # item feature embeddings (identity rows first)
        self._item_feat_bias = np.zeros(0, dtype=np.float32)
        self._profile_emb = np.zeros((0, 0), dtype=np.float32)  # user profile-feature embeddings
        self._user_id_emb = np.zeros((0, 0), dtype=np.float32)  # user identity embeddings
        self._new: dict[str, tuple[np.ndarray, float]] = {}

    # ---- features ---------------------------------------------------------------------------

    def _item_features(self, content: sp.csr_matrix) -> sp.csr_matrix:
        """[identity | content_weight × content], each row summing to 1 (LightFM's advice)."""
        ident = sp.identity(content.shape[0], dtype=np.float32, format="csr")
        return normalize_rows(sp.hstack([ident, self.content_weight * content], format="csr"), norm="l1")

    def _profiles(self, positive: sp.csr_matrix) -> sp.csr_matrix:
        """Each user's liked-content profile: the strongest `profile_features` of the summed content
        rows of liked items, L2-normalised."""
        profile = top_k_per_row((positive @ self._content).tocsr(), self.profile_features)
        return normalize_rows(profile, norm="l2").astype(np.float32) if profile.shape[1] else profile

    def _user_features(self, positive: sp.csr_matrix) -> sp.csr_matrix:
        """[identity | profile_weight × liked-content profile], each row summing to 1."""
        ident = sp.identity(positive.shape[0], dtype=np.float32, format="csr")
        prof = self._profiles(positive) * self.profile_weight
        return normalize_rows(sp.hstack([ident, prof], format="csr"), norm="l1")

    # ---- fit and score -----------------------------------------------------------------------

    def _model(self):
        from lightfm import LightFM

        return LightFM(
            no_components=self.n_factors, loss=self.loss, learning_rate=self.learning_rate,
            item_alpha=self.item_alpha, user_alpha=self.user_alpha, max_sampled=self.max_sampled,
            random_state=np.random.RandomState(self.seed),
        )

    def _train(self, matrix: InteractionMatrix, epochs: int, *, on_epochs=None):
        """Fit a LightFM model for up to `epochs`; `on_epochs(model, done)` every check_every
        epochs may return False to stop early. Returns (model, user_features, item_features)."""
        positive = matrix.positive()
        positive.data[:] = 1.0
        item_features = self._item_features(self._content)
        user_features = self._user_features(positive)
        model, interactions = self._model(), positive.tocoo()
        step = self.check_every if on_epochs else epochs
        bar = tqdm(total=epochs, desc="lightfm epochs", disable=not self.show_progress, leave=False)
        done = 0
        while done < epochs:
            n = min(step, epochs - done)
            model.fit_partial(interactions, user_features=user_features, item_features=item_features,
                              epochs=n, num_threads=self.num_threads)
            done += n
            bar.update(n)
            if on_epochs is not None and on_epochs(model, done, user_features, item_features) is False:
                break
        bar.close()
        return model, user_features, item_features

    def _best_epochs(self, matrix: InteractionMatrix) -> int:
        split = holdout(matrix, fraction=0.2, seed=self.seed)
        if split.users.size == 0:
            return self.epochs
        candidates = split.candidates()
        best = {"ndcg": -1.0, "epochs": self.check_every, "worse": 0}
        started, budget = time.perf_counter(), self.tuning_budget_s

        def check(model, done, user_features, item_features) -> bool:
            U = np.asarray(user_features[split.users] @ model.user_embeddings)
            V = np.asarray(item_features @ model.item_embeddings)
            b = np.asarray(item_features @ model.item_biases).ravel()
            ndcg = validation_ndcg(lambda users: U @ V.T + b, split, candidates=candidates)
            if ndcg > best["ndcg"]:
                best.update(ndcg=ndcg, epochs=done, worse=0)
            else:
                best["worse"] += 1
            over = budget is not None and time.perf_counter() - started > budget
            return best["worse"] < 3 and not over

        self._train(split.train, self.epochs, on_epochs=check)
        logger.debug("lightfm: %d epochs chosen (holdout NDCG@10 %.4f)", best["epochs"], best["ndcg"])
        self.tuning = {"params": {"epochs": int(best["epochs"])}, "holdout_ndcg": round(float(best["ndcg"]), 4),
                       "seconds": round(time.perf_counter() - started, 3)}
        return int(best["epochs"])

    def _fit(self, matrix: InteractionMatrix, items: dict[str, Item]) -> None:
        catalog = [items.get(i) for i in matrix.item_ids]
        self._featurizer = ItemFeaturizer(max_words=self.text_words).fit(i for i in catalog if i is not None)
        self._content = self._featurizer.transform(catalog)
        self.epochs_used = self._best_epochs(matrix) if self.early_stopping else self.epochs
        model, user_features, item_features = self._train(matrix, self.epochs_used)
        n_users = matrix.shape[0]
        self._user_id_emb = np.ascontiguousarray(model.user_embeddings[:n_users], dtype=np.float32)
        self._profile_emb = np.ascontiguousarray(model.user_embeddings[n_users:], dtype=np.float32)
        self._item_emb = np.ascontiguousarray(model.item_embeddings, dtype=np.float32)
        self._item_feat_bias = np.ascontiguousarray(model.item_biases, dtype=np.float32)
        self._U = np.asarray(user_features @ model.user_embeddings, dtype=np.float32)
        self._V = np.asarray(item_features @ self._item_emb, dtype=np.float32)
        self._bias = np.asarray(item_features @ self._item_feat_bias, dtype=np.float32).ravel()
        self._new = {}

    def frozen_config(self) -> dict:
        return {**self._config(), "epochs": self.epochs_used, "early_stopping": False}

    def _fold_in(self, users: np.ndarray) -> None:
        """Re-sum the user's features with the new content profile (LightFM's own representation
        for that feature vector), then a few WARP-like ranking steps on the new row so the change
        shows even when identity dominates or the catalog has no content."""
        values = self.user_matrix(users)
        values.data = np.log1p(np.maximum(values.data, 0.0))
        values.eliminate_zeros()
        rows = values.copy()
        rows.data[:] = 1.0
        n_fit = self._user_id_emb.shape[0]
        prof = self._profiles(rows) * self.profile_weight if self._content.shape[1] else None
        mean_user = self._U[:n_fit].mean(axis=0) if n_fit else np.zeros(self._V.shape[1], np.float32)
        rows = []
        for r, u in enumerate(users):
            ident = 1.0 if u < n_fit else 0.0
            vec = self._user_id_emb[u].astype(np.float64) if ident else np.zeros(self._V.shape[1])
            total = ident
            if prof is not None and prof[r].nnz:
                vec = vec + np.asarray(prof[r] @ self._profile_emb).ravel()
                total += float(prof[r].sum())
            start = vec / total if total > 0 else mean_user
            span = slice(values.indptr[r], values.indptr[r + 1])
            rows.append(RankingRow(values.indices[span], values.data[span], start, int(u)))
        self._set_user_vectors(users, ranking_user_vectors(self._V, self._bias, rows, steps=100))

    # ---- new items: scored from content features ---------------------------------------------

    def add_items(self, anchors, *, items=None) -> None:
        super().add_items(anchors, items=items)
        fresh = [i for i in (items or {}).values() if i.id not in self._item_index]
        if not fresh or self._featurizer.n_features == 0:
            return
        content = self._featurizer.transform(fresh)
        # The same l1-normalised features as at fit time, minus the identity the item never had.
        feats = normalize_rows(self.content_weight * content, norm="l1")
        n_known = len(self._item_ids)
        vecs = np.asarray(feats @ self._item_emb[n_known:], dtype=np.float32)
        biases = np.asarray(feats @ self._item_feat_bias[n_known:]).ravel()
        for n, item in enumerate(fresh):
            if feats.indptr[n + 1] > feats.indptr[n]:
                self._new[item.id] = (vecs[n], float(biases[n]))

    def _new_item_ids(self) -> list[str]:
        return list(dict.fromkeys([*self._new, *super()._new_item_ids()]))

    def _score_new(self, u, item_ids, full):
        out = super()._score_new(u, item_ids, full)
        if u is None:  # cold users are scored on the popularity scale; anchors cover them
            return out
        for n, item_id in enumerate(item_ids):
            if item_id in self._new:
                vec, b = self._new[item_id]
                out[n] = float(vec @ self._U[u] + b)
        return out

    # ---- persistence -------------------------------------------------------------------------

    def _state(self) -> dict:
        state = {
            **super()._state(), "content": self._content, "item_emb": self._item_emb,
            "item_feat_bias": self._item_feat_bias, "profile_emb": self._profile_emb,
            "user_id_emb": self._user_id_emb, **{f"feat_{k}": v for k, v in self._featurizer.to_arrays().items()},
            "new_ids": np.array(list(self._new), dtype=str),
            "new_vecs": np.array([v for v, _ in self._new.values()], dtype=np.float32).reshape(len(self._new), self._V.shape[1]),
            "new_bias": np.array([b for _, b in self._new.values()], dtype=np.float32),
        }
        return state

    def _restore(self, state: dict) -> None:
        super()._restore(state)
        self._content, self._item_emb = state["content"], state["item_emb"]
        self._item_feat_bias, self._profile_emb = state["item_feat_bias"], state["profile_emb"]
        self._user_id_emb = state["user_id_emb"]
        self._featurizer = ItemFeaturizer.from_arrays({"vocabulary": state["feat_vocabulary"], "idf": state["feat_idf"]})
        self._new = {str(i): (v, float(b)) for i, v, b in zip(state["new_ids"], state["new_vecs"], state["new_bias"])}

    def _config(self) -> dict:
        return {
            "n_factors": self.n_factors, "loss": self.loss, "epochs": self.epochs, "learning_rate": self.learning_rate,
            "item_alpha": self.item_alpha, "user_alpha": self.user_alpha, "content_weight": self.content_weight,
            "profile_weight": self.profile_weight, "profile_features": self.profile_features,
            "text_words": self.text_words, "early_stopping": self.early_stopping, "check_every": self.check_every,
            "max_sampled": self.max_sampled, "seed": self.seed, "num_threads": self.num_threads,
        }
