"""`TwoTowerRecommender`: the two-tower model behind the collaborative `Recommender` seam, so the
ensemble can weigh it on validation like any other member (registered as "two_tower").

It fits on the interaction matrix (`TwoTowerModel.fit_matrix`: bag-of-items histories, a random
validation holdout picks the epoch) and on what code in overdrive.models may read of the catalog:
tags, author and type as metadata tokens, and the item text as a hashed bag of words (the text
"modality"; the sentence encoder lives in overdrive.content, which models may not import).
- Scores are cosines of the user and item tower outputs (`FactorRecommender` holds them).
- Fold-in runs the user tower on the new row, no gradient step: a user keeps their id embedding
  while the new row still holds at least half of the positives it was trained on (the usual
  case: rows only grow); a row that was replaced drops it, as its id vector describes a taste
  the row no longer shows. New users are scored from their row alone.
- A new item with tags, author, type or text is scored from its item-tower vector (no anchors
  needed); one without gets the anchors' weighted score, as for every member.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from overdrive.domain.types import Item
from overdrive.models.collaborative_filtering.factors import FactorRecommender
from overdrive.models.collaborative_filtering.matrix import InteractionMatrix
from overdrive.models.two_tower.features import hashed_text_vector
from overdrive.models.two_tower.model import TwoTowerModel

_MODEL_KEYS = ("dim", "hidden", "epochs", "batch_size", "learning_rate", "temperature", "logq", "mixed_negatives",
               "id_dropout", "user_id_dropout", "modality_dropout", "max_history", "validation_fraction", "patience",
               "seed")
_MIN_STEPS = 50  # optimizer steps per epoch the batch size is lowered to give (down to 64 a batch)


class TwoTowerRecommender(FactorRecommender):
    name = "two_tower"

    def __init__(
        self,
        *,
        dim: int = 64,
        hidden: int = 64,
        epochs: int = 12,
        batch_size: int = 512,
        learning_rate: float = 3e-3,
        temperature: float = 0.07,
        logq: float = 1.0,
        mixed_negatives: int = 256,
        id_dropout: float = 0.3,
        user_id_dropout: float = 0.3,
        modality_dropout: float = 0.3,
        max_history: int = 100,
        validation_fraction: float = 0.1,
        patience: int = 0,
        text_dim: int = 256,
        seed: int = 0,
        show_progress: bool = False,
    ) -> None:
        super().__init__()
        self.dim, self.hidden, self.epochs, self.batch_size = dim, hidden, epochs, batch_size
        self.learning_rate, self.temperature, self.logq, self.mixed_negatives = learning_rate, temperature, logq, mixed_negatives
        self.id_dropout, self.user_id_dropout, self.modality_dropout = id_dropout, user_id_dropout, modality_dropout
        self.max_history, self.validation_fraction, self.patience = max_history, validation_fraction, patience
        self.text_dim, self.seed, self.show_progress = text_dim, seed, show_progress
        self.model: TwoTowerModel | None = None
        self._new: dict[str, np.ndarray] = {}

    # ---- fit and fold-in ---------------------------------------------------------------------

    def _content(self, items: Mapping[str, Item], ids: list[str]) -> dict[str, dict[str, np.ndarray]]:
        with_text = [i for i in ids if i in items and items[i].text]
        vecs = hashed_text_vector([items[i].text for i in with_text], dim=self.text_dim)
        return {i: {"text": vecs[n]} for n, i in enumerate(with_text)}

    def _fit(self, matrix: InteractionMatrix, items: dict[str, Item]) -> None:
        catalog = {i: items[i] for i in matrix.item_ids if i in items}
        # On a small matrix the configured batch leaves too few optimizer steps to learn anything
        # (a 9,000-row world at 512: 18 steps an epoch, a popularity-like fit that ranks below
        # chance); smaller batches give every epoch at least _MIN_STEPS. Large matrices are unchanged.
        config = {k: getattr(self, k) for k in _MODEL_KEYS}
        config["batch_size"] = min(self.batch_size, max(64, -(-int((matrix.values.data > 0).sum()) // _MIN_STEPS)))
        model = TwoTowerModel(**config, history="bag", runtime="eager")
        model.fit_matrix(matrix, catalog, self._content(catalog, list(catalog)), progress=self.show_progress)
        self.model = model
        n_items = len(matrix.item_ids)
        self._V = np.ascontiguousarray(model.known_item_vectors()[1][:n_items])
        self._bias = np.zeros(n_items, dtype=np.float32)
        X = matrix.values
        rows = [(X.indices[X.indptr[u] : X.indptr[u + 1]], X.data[X.indptr[u] : X.indptr[u + 1]])
                for u in range(matrix.shape[0])]
        self._U = model.user_vectors_from_rows(list(matrix.user_ids), rows)
        self._new = {}
        report = model.status()
        self.tuning = {"params": {"epochs": report["best_epoch"]}, "holdout_recall@10": (report["validation"] or {}).get("recall@10")}

    def report(self) -> dict:
        """The network's training report: loss and holdout recall per epoch, sizes, runtime."""
        return {} if self.model is None else self.model.status()

    def _fold_in(self, users: np.ndarray) -> None:
        n_fit = self._rows.shape[0]
        ids, rows, use_ids = [], [], []
        for u in users.tolist():
            idx, vals = self.user_row(u)
            rows.append((idx, vals))
            ids.append(self._user_ids[u] if u < len(self._user_ids) else "")
            keep = False
            if u < n_fit:
                s, e = self._rows.indptr[u], self._rows.indptr[u + 1]
                old = set(self._rows.indices[s:e][self._rows.data[s:e] > 0].tolist())
                new = set(idx[vals > 0].tolist())
                keep = bool(old) and len(old & new) >= 0.5 * len(old)
            use_ids.append(keep)
        self._set_user_vectors(users, self.model.user_vectors_from_rows(ids, rows, use_ids=use_ids))

    # ---- new items ---------------------------------------------------------------------------

    def add_items(self, anchors, *, items=None) -> None:  # type: ignore[no-untyped-def]
        super().add_items(anchors, items=items)
        fresh = [i for i in (items or {}).values() if i.id not in self._item_index and i.id not in self._new]
        if not fresh or self.model is None:
            return
        catalog = {i.id: i for i in fresh}
        content = self._content(catalog, list(catalog))
        known = self.model.has_features([i.id for i in fresh], catalog, content)
        vecs = self.model.item_vectors([i.id for i in fresh], catalog, content)
        for n, item in enumerate(fresh):
            if known[n] and (item.tags or item.author_id or item.text):  # more than a media type
                self._new[item.id] = vecs[n]

    def _new_item_ids(self) -> list[str]:
        return list(dict.fromkeys([*self._new, *super()._new_item_ids()]))

    def _score_new(self, u, item_ids, full):  # type: ignore[no-untyped-def]
        out = super()._score_new(u, item_ids, full)
        if u is None:  # cold users are scored on the popularity scale; anchors cover them
            return out
        for n, item_id in enumerate(item_ids):
            vec = self._new.get(item_id)
            if vec is not None:
                out[n] = float(vec @ self._U[u])
        return out

    # ---- persistence -------------------------------------------------------------------------

    def _state(self) -> dict:
        arrays, meta = self.model.to_arrays()
        state = {**super()._state(), "tt_meta": np.array(json.dumps(meta)),
                 "new_ids": np.array(list(self._new), dtype=str),
                 "new_vecs": np.array(list(self._new.values()), dtype=np.float32).reshape(len(self._new), self.dim)}
        state.update({"tt_" + k.replace(".", ":"): v for k, v in arrays.items()})  # keys may not hold dots
        return state

    def _restore(self, state: dict) -> None:
        super()._restore(state)
        arrays = {k[3:].replace(":", "."): v for k, v in state.items() if k.startswith("tt_") and k != "tt_meta"}
        self.model = TwoTowerModel.from_arrays(arrays, json.loads(str(state["tt_meta"][()])))
        self._new = {str(i): v for i, v in zip(state["new_ids"], state["new_vecs"])}

    def _config(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in _MODEL_KEYS}, "text_dim": self.text_dim}
