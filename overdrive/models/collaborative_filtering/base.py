"""The `Recommender` seam, documented once, and the base class every method shares.

A recommender learns from an `InteractionMatrix` (users × items, signed implicit feedback) and
then answers for string ids:

- `fit(matrix, *, items=None)` — learn from scratch. `items` is the catalog ({id: Item}); hybrid
  models read its tags, authors and text, the others ignore it.
- `score(user_id, item_ids) -> np.ndarray` — one finite float per requested id, aligned with the
  input; higher is better. Scores are comparable within one call, not across users or methods.
  Never raises for unknown ids: a cold user gets the popularity prior, a cold item gets the
  weighted score of its anchor items (content or co-interaction neighbours, see `add_items`) or,
  with no anchors, the mean of the user's other candidates — a neutral guess.
- `recommend(user_id, n=10, *, exclude_seen=True) -> [(item_id, score)]` — best n over the
  whole catalog, excluding items the user already interacted with (positively or negatively).
- `save(path)` / `load(path)` — a directory holding `meta.json` and `arrays.npz`; no pickle.
- `update_users({user_id: {item_id: value}})` — fold-in: replace those users' interaction rows
  and refresh their state without refitting (ALS closed form, BPR/LightFM a few SGD steps, row-
  based models simply read the new row). New user ids are added.
- `add_items({new_id: (anchor_ids, weights)}, items=...)` — make items unknown at fit time
  scorable without a retrain.

`BaseRecommender` implements all of that once around five hooks a method provides: `_fit`,
`_score_rows` (dense scores for a batch of users over all items), optionally `_score_items` (a
faster path for a few candidates), `_fold_in` and `_state`/`_restore`/`_config` for persistence.
"""

from __future__ import annotations

import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from overdrive.domain.types import Item
from overdrive.models.collaborative_filtering.matrix import InteractionMatrix

FORMAT_VERSION = 1
Anchors = tuple[Sequence[str], Sequence[float]]


@runtime_checkable
class Recommender(Protocol):
    """One collaborative-filtering method (see the module docstring for the contract)."""

    name: str

    def fit(self, matrix: InteractionMatrix, *, items: Mapping[str, Item] | None = None) -> None: ...

    def score(self, user_id: str, item_ids: Sequence[str]) -> np.ndarray: ...

    def recommend(self, user_id: str, n: int = 10, *, exclude_seen: bool = True) -> list[tuple[str, float]]: ...

    def save(self, path: str | os.PathLike[str]) -> None: ...

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recommender: ...


@runtime_checkable
class IncrementalRecommender(Recommender, Protocol):
    """A recommender that takes new interactions and new items without a full refit."""

    def update_users(self, rows: Mapping[str, Mapping[str, float]]) -> None: ...

    def add_items(self, anchors: Mapping[str, Anchors], *, items: Mapping[str, Item] | None = None) -> None: ...


def positions(index: Mapping[str, int], ids: Sequence[str]) -> np.ndarray:
    """Each id's position in `index`, -1 for ids it lacks (the lookup runs in C: map/repeat)."""
    return np.fromiter(map(index.get, ids, repeat(-1)), dtype=np.int64, count=len(ids))


class BaseRecommender(ABC):
    """Id bookkeeping, fallbacks, fold-in rows, tuning and persistence shared by every method."""

    name: ClassVar[str] = "base"
    # Hyperparameter candidates tried on a holdout of the training matrix when `self.tune` is set.
    TUNING_GRID: ClassVar[tuple[dict[str, Any], ...]] = ()
    tune: bool = False
    tuning_budget_s: float | None = None  # seconds the grid search may take (None: the whole grid)

    def __init__(self) -> None:
        self._user_ids: list[str] = []
        self._user_index: dict[str, int] = {}
        self._item_ids: list[str] = []
        self._item_index: dict[str, int] = {}
        self._rows = sp.csr_matrix((0, 0), dtype=np.float32)
        self._overlay: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._prior = np.zeros(0, dtype=np.float32)
        self._anchors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.tuning: dict[str, Any] = {}
        self._blas: Any = None  # threadpoolctl controller, created on first fold-in

    def report(self) -> dict[str, Any]:
        """What this member learnt beyond its scores (a neural member's loss curves), for status
        pages; empty for methods with nothing to add."""
        return {}

    # ---- the Recommender protocol -------------------------------------------------------------

    def fit(self, matrix: InteractionMatrix, *, items: Mapping[str, Item] | None = None) -> None:
        self._user_ids, self._user_index = list(matrix.user_ids), dict(matrix.user_index)
        self._item_ids, self._item_index = list(matrix.item_ids), dict(matrix.item_index)
        self._rows = matrix.values
        self._overlay, self._anchors = {}, {}
        positive = self._rows.data > 0
        counts = np.bincount(self._rows.indices[positive], minlength=len(self._item_ids))
        self._prior = np.log1p(counts).astype(np.float32)
        items = dict(items or {})
        if self.tune and self.TUNING_GRID and matrix.nnz:
            self._tune_on_holdout(matrix, items)
        self._fit(matrix, items)

    def score(self, user_id: str, item_ids: Sequence[str]) -> np.ndarray:
        ids = list(item_ids)
        return self.score_indexed(user_id, ids, self.item_positions(ids))

    def item_positions(self, ids: Sequence[str]) -> np.ndarray:
        """Each id's column in the fitted catalog, -1 for items it has not seen."""
        return positions(self._item_index, ids)

    def score_indexed(self, user_id: str, ids: list[str], idx: np.ndarray) -> np.ndarray:
        """`score` with `item_positions(ids)` already known (an ensemble looks them up once)."""
        known = idx >= 0
        u = self._user_index.get(user_id)
        out = np.zeros(len(ids), dtype=np.float32)
        if known.any():
            out[known] = self._prior[idx[known]] if u is None else self._score_items(u, idx[known])
        if not known.all():
            self._fill_unknown(u, ids, ~known, out)
        return np.nan_to_num(out, nan=0.0, posinf=1e30, neginf=-1e30)

    def recommend(self, user_id: str, n: int = 10, *, exclude_seen: bool = True) -> list[tuple[str, float]]:
        ids, scores = self.score_all(user_id)
        u = self._user_index.get(user_id)
        if exclude_seen and u is not None:
            seen, _ = self.user_row(u)
            scores[seen] = -np.inf
        return top_n(ids, scores, n)

    def score_all(self, user_id: str) -> tuple[list[str], np.ndarray]:
        """(ids, scores) over every item this model can score: the fitted catalog, then items
        added since (`add_items`). Cold users get the popularity prior."""
        u = self._user_index.get(user_id)
        scores = self._prior.astype(np.float32) if u is None else self._score_rows(np.array([u]))[0].astype(np.float32)
        ids = self._item_ids
        extra = self._new_item_ids()
        if extra:
            new = self._score_new(u, extra, scores)
            new[np.isnan(new)] = float(scores.mean()) if scores.size else 0.0
            scores = np.concatenate([scores, new])
            ids = ids + extra
        return ids, np.nan_to_num(scores, nan=0.0, posinf=1e30, neginf=-1e30)

    def frozen_config(self) -> dict[str, Any]:
        """Constructor arguments that reproduce this fitted configuration without tuning again."""
        config = self._config()
        if "tune" in config:
            config["tune"] = False
        return config

    def _tune_on_holdout(self, matrix: InteractionMatrix, items: dict[str, Item]) -> None:
        """Pick the TUNING_GRID entry with the best holdout NDCG@10 and adopt it."""
        from overdrive.models.collaborative_filtering.tuning import (
            holdout,
            validation_ndcg,
        )

        split = holdout(matrix, seed=0)
        if split.users.size == 0:
            return
        candidates = split.candidates()
        results = []
        started = time.perf_counter()
        for params in self.TUNING_GRID:  # in order (factor models: fewest factors first); a cut keeps the best so far
            if results and self.tuning_budget_s is not None and time.perf_counter() - started > self.tuning_budget_s:
                break
            trial = type(self)(**{**self._config(), **params, "tune": False})
            trial.fit(split.train, items=items)
            results.append((validation_ndcg(trial.score_users, split, candidates=candidates), params))
        best_ndcg, best = max(results, key=lambda r: r[0])
        for key, value in best.items():
            setattr(self, key, value)
        self.tuning = {"params": best, "holdout_ndcg": round(best_ndcg, 4), "tried": len(results),
                       "grid": len(self.TUNING_GRID), "seconds": round(time.perf_counter() - started, 2)}

    def update_users(self, rows: Mapping[str, Mapping[str, float]]) -> None:
        """Replace each user's interaction row (item id → signed value) and fold them in.

        New users become visible to `score` only once their state is ready, so a concurrent
        reader never sees an index without a vector behind it.
        """
        users, fresh = [], []
        next_index = len(self._user_ids)
        for user_id, row in rows.items():
            u = self._user_index.get(user_id)
            if u is None:
                u, next_index = next_index, next_index + 1
                fresh.append(user_id)
            pairs = sorted((self._item_index[i], float(v)) for i, v in row.items() if i in self._item_index and v != 0)
            idx = np.array([p[0] for p in pairs], dtype=np.int32)
            vals = np.array([p[1] for p in pairs], dtype=np.float32)
            self._overlay[u] = (idx, vals)
            users.append(u)
        if users:
            with self._single_thread_blas():
                self._fold_in(np.array(users, dtype=np.int64))
        for user_id in fresh:
            self._user_index[user_id] = len(self._user_ids)
            self._user_ids.append(user_id)

    def forget_user(self, user_id: str) -> bool:
        """Unlink the user: their id and interactions go, their row scores as nobody's. (Factor
        rows stay as anonymous numbers under no id until the next fit.) False if unknown."""
        u = self._user_index.pop(user_id, None)
        if u is None:
            return False
        self._user_ids[u] = ""
        self._overlay[u] = (np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))
        return True

    def update_user(self, user_id: str, interactions: Mapping[str, float]) -> None:
        self.update_users({user_id: interactions})

    def add_items(self, anchors: Mapping[str, Anchors], *, items: Mapping[str, Item] | None = None) -> None:
        """Register items unknown at fit time; each scores as the weighted mean of its anchors."""
        for item_id, (anchor_ids, weights) in anchors.items():
            if item_id in self._item_index:
                continue
            pairs = [(self._item_index[a], float(w)) for a, w in zip(anchor_ids, weights) if a in self._item_index and w > 0]
            if pairs:
                idx = np.array([p[0] for p in pairs], dtype=np.int64)
                w = np.array([p[1] for p in pairs], dtype=np.float32)
                self._anchors[item_id] = (idx, w / w.sum())

    def save(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"prior": self._prior}
        pack_sparse(arrays, "rows", self.user_matrix(np.arange(len(self._user_ids))))
        for n, (item_id, (idx, w)) in enumerate(self._anchors.items()):
            arrays[f"anchor.{n}.idx"], arrays[f"anchor.{n}.w"] = idx, w
        for key, value in self._state().items():
            if sp.issparse(value):
                pack_sparse(arrays, f"m.{key}", value)
            else:
                arrays[f"m.{key}"] = np.asarray(value)
        with open(path / "arrays.npz", "wb") as fh:
            np.savez(fh, **arrays)
        meta = {
            "format": FORMAT_VERSION,
            "class": self.name,
            "config": self._config(),
            "user_ids": self._user_ids,
            "item_ids": self._item_ids,
            "anchors": list(self._anchors),
            "sparse_state": [k for k, v in self._state().items() if sp.issparse(v)],
            "tuning": self.tuning,
        }
        (path / "meta.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BaseRecommender:
        """A model this class saved; `registry.load_recommender` loads one of any class."""
        path = Path(path)
        meta = saved_meta(path)
        if meta["class"] != cls.name:
            raise ValueError(f"{path}: holds a {meta['class']!r} model, not {cls.name!r}")
        obj = cls(**meta["config"])
        with np.load(path / "arrays.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        obj._user_ids, obj._item_ids = list(meta["user_ids"]), list(meta["item_ids"])
        obj._user_index = {u: n for n, u in enumerate(obj._user_ids) if u}  # "": a forgotten user
        obj._item_index = {i: n for n, i in enumerate(obj._item_ids)}
        obj._rows = unpack_sparse(arrays, "rows")
        obj._prior = arrays["prior"]
        obj._anchors = {a: (arrays[f"anchor.{n}.idx"], arrays[f"anchor.{n}.w"]) for n, a in enumerate(meta["anchors"])}
        state: dict[str, Any] = {k[2:]: v for k, v in arrays.items() if k.startswith("m.") and k.count(".") == 1}
        for key in meta["sparse_state"]:
            state[key] = unpack_sparse(arrays, f"m.{key}")
        obj._restore(state)
        obj.tuning = dict(meta.get("tuning") or {})
        return obj

    # ---- helpers for subclasses and the ensemble ---------------------------------------------

    @property
    def user_ids(self) -> list[str]:
        return self._user_ids

    @property
    def item_ids(self) -> list[str]:
        return self._item_ids

    def user_index(self, user_id: str) -> int | None:
        return self._user_index.get(user_id)

    def user_row(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        """(item indices, signed values) of user `u`, fold-ins included."""
        if u in self._overlay:
            return self._overlay[u]
        if u >= self._rows.shape[0]:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        s, e = self._rows.indptr[u], self._rows.indptr[u + 1]
        return self._rows.indices[s:e], self._rows.data[s:e]

    def user_matrix(self, users: np.ndarray) -> sp.csr_matrix:
        """Rows of the interaction matrix for `users`, fold-ins included."""
        n_base = self._rows.shape[0]
        if not self._overlay and (users < n_base).all():
            return self._rows[users]
        parts = [self.user_row(int(u)) for u in users]
        indptr = np.concatenate([[0], np.cumsum([p[0].size for p in parts])])
        idx = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int32)
        vals = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.float32)
        return sp.csr_matrix((vals, idx, indptr), shape=(len(users), len(self._item_ids)), dtype=np.float32)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Dense (len(users), n_items) scores of known user indices — the batch path for evaluation."""
        return np.nan_to_num(self._score_rows(np.asarray(users, dtype=np.int64)).astype(np.float32, copy=False))

    def _single_thread_blas(self) -> Any:
        """Fold-in is many tiny dense solves; OpenBLAS's thread pool makes a 128² solve ~25×
        slower on two cores (12 ms vs 0.5 ms). The controller is built once (it scans loaded
        libraries); entering its limit costs ~20 µs."""
        if self._blas is None:
            from threadpoolctl import ThreadpoolController

            self._blas = ThreadpoolController()
        return self._blas.limit(limits=1, user_api="blas")

    def _fill_unknown(self, u: int | None, ids: list[str], unknown: np.ndarray, out: np.ndarray) -> None:
        positions = np.flatnonzero(unknown)
        new = self._score_new(u, [ids[p] for p in positions], None)
        missing = np.isnan(new)
        if missing.any():
            known = ~unknown
            new[missing] = float(out[known].mean()) if known.any() else 0.0
        out[positions] = new

    def _new_item_ids(self) -> list[str]:
        """Ids unknown at fit time that this model can score (recommend considers them too)."""
        return list(self._anchors)

    def _score_new(self, u: int | None, item_ids: list[str], full: np.ndarray | None) -> np.ndarray:
        """Scores of ids unknown at fit time: the weighted mean of their anchors' scores; NaN for
        ids without anchors. `full`, when given, is the user's score row over known items."""
        out = np.full(len(item_ids), np.nan, dtype=np.float32)
        anchored = [n for n, i in enumerate(item_ids) if i in self._anchors]
        if not anchored:
            return out
        if full is None:
            all_idx = np.unique(np.concatenate([self._anchors[item_ids[n]][0] for n in anchored]))
            full = np.zeros(len(self._item_ids), dtype=np.float32)
            full[all_idx] = self._prior[all_idx] if u is None else self._score_items(u, all_idx)
        for n in anchored:
            idx, w = self._anchors[item_ids[n]]
            out[n] = float(full[idx] @ w)
        return out

    # ---- hooks ---------------------------------------------------------------------------------

    @abstractmethod
    def _fit(self, matrix: InteractionMatrix, items: dict[str, Item]) -> None:
        """Learn from `matrix` (rows, ids and prior are already stored)."""

    @abstractmethod
    def _score_rows(self, users: np.ndarray) -> np.ndarray:
        """Scores of known user indices over all items, shape (len(users), n_items)."""

    def _score_items(self, u: int, items: np.ndarray) -> np.ndarray:
        return self._score_rows(np.array([u]))[0, items]

    def _fold_in(self, users: np.ndarray) -> None:
        """Refresh per-user state for `users` from `user_row`; row-based models need nothing."""

    def _state(self) -> dict[str, np.ndarray | sp.csr_matrix]:
        return {}

    def _restore(self, state: dict[str, Any]) -> None:
        """Inverse of `_state`."""

    def _config(self) -> dict[str, Any]:
        """Constructor keyword arguments, JSON-serialisable."""
        return {}


def top_n(ids: Sequence[str], scores: np.ndarray, n: int) -> list[tuple[str, float]]:
    """The n best (id, score) pairs, best first; -inf entries (excluded) never appear."""
    n = min(n, int(np.isfinite(scores).sum()))
    if n <= 0:
        return []
    part = np.argpartition(-scores, n - 1)[:n] if n < scores.size else np.arange(scores.size)
    order = part[np.argsort(-scores[part], kind="stable")]
    return [(ids[i], float(scores[i])) for i in order if np.isfinite(scores[i])][:n]


def pack_sparse(arrays: dict[str, np.ndarray], key: str, m: sp.csr_matrix) -> None:
    m = sp.csr_matrix(m)
    arrays[f"{key}.data"], arrays[f"{key}.indices"] = m.data, m.indices
    arrays[f"{key}.indptr"], arrays[f"{key}.shape"] = m.indptr, np.array(m.shape, dtype=np.int64)


def unpack_sparse(arrays: dict[str, np.ndarray], key: str) -> sp.csr_matrix:
    shape = tuple(int(x) for x in arrays[f"{key}.shape"])
    return sp.csr_matrix((arrays[f"{key}.data"], arrays[f"{key}.indices"], arrays[f"{key}.indptr"]), shape=shape)


def saved_meta(path: Path) -> dict[str, Any]:
    """The `meta.json` of a saved model, checked for a format this code reads."""
    meta = json.loads((path / "meta.json").read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported model format {meta.get('format')!r}")
    return meta
