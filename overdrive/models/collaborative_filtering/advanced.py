"""`AdvancedCollaborativeFiltering`: every method, an ensemble that earns its weights, and live
updates — the one object the service holds.

Fit: a validation holdout is carved from the training matrix; each method fits on the rest (and
tunes its own hyperparameters on a further holdout, or adopts what it chose before on data of a
similar size: `tuning_memo`), its validation scores are z-scored per
user, and the ensemble weights are fitted on validation NDCG@10 (`ensemble.fit_weights`). Then
every method is refitted on the whole matrix with the configuration it chose.

Live: `observe(signals)` accumulates each signal's decayed strength per (user, item); every
`fold_in_every` signals the touched users are folded into every member (no refit) and items
unknown at fit time get anchors — their nearest known items by content and by co-interaction —
so they can be scored and recommended at once. `add_items` does the same for catalog items that
arrive before any signal. Readers may call `score`/`recommend` while another thread observes.

`fold_in_on_demand`: where every replica reads every signal of a shared topic, folding each
touched user into every replica's copy multiplies the cost by the replica count. Then `observe`
only merges the signals into the users' rows (and anchors new items), and a user is folded in
once this copy scores them (in the background, with the others scored meanwhile) — so a replica
folds in the people it serves, at most once per ranking, and their next ranking there reflects
every signal read so far.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from overdrive.domain.codec import signal_from_dict
from overdrive.domain.item_numbers import ItemColumn, item_numbers
from overdrive.domain.types import DEFAULT_SIGNAL_WEIGHTS, Item, Signal
from overdrive.models.collaborative_filtering.base import (
    BaseRecommender,
    pack_sparse,
    top_n,
    unpack_sparse,
)
from overdrive.models.collaborative_filtering.content import (
    ItemFeaturizer,
    nearest_items,
)
from overdrive.models.collaborative_filtering.ensemble import (
    EnsembleWeights,
    fit_weights,
    zscore_rows,
)
from overdrive.models.collaborative_filtering.matrix import (
    InteractionMatrix,
    SignalStrength,
    items_by_id,
)
from overdrive.models.collaborative_filtering.registry import (
    DEFAULT_METHODS,
    create,
    load_recommender,
    recommender_class,
)
from overdrive.models.collaborative_filtering.tuning import holdout
from overdrive.models.collaborative_filtering.tuning_memo import (
    DataSize,
    Remembered,
    TuningMemo,
)

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1
_MAX_VALIDATION_CELLS = 40_000_000  # users × items × methods held in memory while fitting weights
_SCORE_CACHE_BYTES = 256 * 1024 * 1024  # per-user score rows kept between fold-ins


class AdvancedCollaborativeFiltering:
    """The collaborative-filtering suite behind the `Recommender` seam, plus live fold-in."""

    name = "ensemble"

    def __init__(
        self,
        *,
        methods: Sequence[str] = DEFAULT_METHODS,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        signal_weights: Mapping[str, float] | None = None,
        half_life_days: float | None = 14.0,
        fold_in_every: int = 1000,
        fold_in_on_demand: bool = False,
        tune: bool = True,
        validation_fraction: float = 0.2,
        max_validation_users: int = 1500,
        content_neighbours: int = 20,
        seed: int = 0,
        show_progress: bool = False,
        tuning_memo: TuningMemo | None = None,
        tune_budget_s: float | None = None,
        fit_unweighted: bool = False,
    ) -> None:
        """`tuning_memo`: where members' tuned hyperparameters are remembered between fits, and
        adopted on data of a similar size instead of tuning again (None: always tune).
        `tune_budget_s`: the most one member's grid search may take (None: the whole grid).
        `fit_unweighted`: also fit, on all the data, the members the validation weights drop (for
        evaluations that score every member); otherwise they are left out, as they would add
        nothing to a score and cost a fit and every fold-in."""
        if fold_in_every < 1:
            raise ValueError("fold_in_every must be >= 1")
        self.methods = tuple(methods)
        self.params = {k: dict(v) for k, v in (params or {}).items()}
        self.signal_weights = dict(signal_weights or DEFAULT_SIGNAL_WEIGHTS)
        self.half_life_days = half_life_days
        self.fold_in_every, self.fold_in_on_demand = fold_in_every, fold_in_on_demand
        self.tune, self.validation_fraction, self.max_validation_users = tune, validation_fraction, max_validation_users
        self.content_neighbours, self.seed, self.show_progress = content_neighbours, seed, show_progress
        self.tuning_memo, self.tune_budget_s, self.fit_unweighted = tuning_memo, tune_budget_s, fit_unweighted
        self.version: str | None = None  # set by ArtifactStore
        self.members: dict[str, BaseRecommender] = {}
        self.ensemble = EnsembleWeights(weights={})
        self.fit_seconds: dict[str, float] = {}
        self.fitted_at: float | None = None
        self._strength = SignalStrength(signal_weights=self.signal_weights, half_life_days=half_life_days)
        self._anchor_time = 0.0
        self._item_ids: list[str] = []
        self._item_index: dict[str, int] = {}
        self._item_position = ItemColumn(-1, np.int64)  # `_item_index` by item number: what a ranking gathers
        self._rows = sp.csr_matrix((0, 0), dtype=np.float32)
        self._user_index: dict[str, int] = {}
        self._featurizer = ItemFeaturizer()
        self._content = sp.csr_matrix((0, 0), dtype=np.float32)
        self._live: dict[str, dict[str, float]] = {}  # rows of users touched since fit
        self._pending: dict[str, dict[str, float]] = {}  # deltas not yet merged into `_live`
        self._unfolded: set[str] = set()  # on demand: users whose `_live` row the members lack
        self._wanted: set[str] = set()  # of those, users scored since: folded in next, together
        self._want_lock = threading.Lock()  # for `_wanted`; `_lock` is held through a fold-in
        self._folding = False  # a fold-in of the wanted is queued
        self._folder: ThreadPoolExecutor | None = None
        self._folded_on_demand = 0
        self._since_fold = 0
        self._folds = 0
        self._last_fold_at: float | None = None
        self._new_items: dict[str, Item] = {}  # catalog items added after fit
        self._new_item_users: dict[str, set[str]] = {}  # unknown item → users who touched it
        self._lock = threading.RLock()
        self._score_cache: OrderedDict[str, tuple] = OrderedDict()  # user -> (generation, names, weights, rows, negatives)

    # ---- fitting -------------------------------------------------------------------------------

    @property
    def weights(self) -> dict[str, float]:
        return dict(self.ensemble.weights)

    def fit_signals(
        self, signals: Iterable[Mapping[str, Any] | Signal], *, items: Iterable[Any] | Mapping[str, Item] | None = None,
        now: float | None = None,
    ) -> InteractionMatrix:
        """Build the interaction matrix from raw signals (configured weights and decay) and fit."""
        catalog = items_by_id(items)
        matrix = InteractionMatrix.from_signals(
            signals, signal_weights=self.signal_weights, half_life_days=self.half_life_days,
            items=list(catalog), now=now,
        )
        self.fit(matrix, items=catalog)
        return matrix

    def fit(self, matrix: InteractionMatrix, *, items: Mapping[str, Item] | Iterable[Any] | None = None) -> None:
        catalog = items_by_id(items)
        started = time.perf_counter()
        weights, configs, tune_seconds = self._fit_weights(matrix, catalog)
        members: dict[str, BaseRecommender] = {}
        fit_seconds: dict[str, float] = {}
        kept = [n for n in self.methods if self.fit_unweighted or weights.weights.get(n, 0.0) > 0.0]
        for name in tqdm(kept, desc="fitting methods", disable=not self.show_progress, leave=False):
            t0 = time.perf_counter()
            member = recommender_class(configs[name][0])(**configs[name][1])
            member.fit(matrix, items=catalog)
            member.tuning = configs[name][2]
            fit_seconds[name] = tune_seconds.get(name, 0.0) + time.perf_counter() - t0
            members[name] = member
        for name in self.methods:  # those left out: what their validation fit took
            fit_seconds.setdefault(name, tune_seconds.get(name, 0.0))
        self._install(matrix, catalog, members, weights, fit_seconds)
        logger.info(
            "collaborative filtering fitted on %d users × %d items (%d interactions) in %.1fs; weights %s",
            *matrix.shape, matrix.nnz, time.perf_counter() - started,
            {n: round(w, 3) for n, w in weights.weights.items() if w > 0},
        )

    def refitted(self, signals: Iterable[Mapping[str, Any] | Signal], *,
                 items: Iterable[Any] | Mapping[str, Item] | None = None) -> AdvancedCollaborativeFiltering:
        """This ensemble fitted again on other signals: its members with a positive weight, each as
        it was tuned, blended with the same weights; no tuning, no validation fits. A replay of
        history (the blend fitted as of a time cut) needs the served model's twin on older data,
        at a fraction of a full retrain's cost."""
        kept = {n: w for n, w in self.ensemble.weights.items() if w > 0 and n in self.members}
        twin = AdvancedCollaborativeFiltering(
            methods=list(kept), signal_weights=self.signal_weights, half_life_days=self.half_life_days,
            fold_in_every=self.fold_in_every, tune=False, content_neighbours=self.content_neighbours, seed=self.seed)
        catalog = items_by_id(items)
        matrix = InteractionMatrix.from_signals(signals, signal_weights=self.signal_weights,
                                                half_life_days=self.half_life_days, items=list(catalog))
        members: dict[str, BaseRecommender] = {}
        fit_seconds: dict[str, float] = {}
        for name in kept:
            t0 = time.perf_counter()
            fitted = self.members[name]
            member = recommender_class(fitted.name)(**fitted.frozen_config())
            member.fit(matrix, items=catalog)
            member.tuning = dict(fitted.tuning)
            members[name], fit_seconds[name] = member, time.perf_counter() - t0
        twin._install(matrix, catalog, members, EnsembleWeights(weights=kept, best_member=self.ensemble.best_member),
                      fit_seconds)
        return twin

    def _install(self, matrix: InteractionMatrix, catalog: dict[str, Item], members: dict[str, BaseRecommender],
                 weights: EnsembleWeights, fit_seconds: dict[str, float]) -> None:
        """Serve fitted members on `matrix` from now on (one swap under the lock)."""
        featurizer = ItemFeaturizer().fit(catalog.values())
        content = featurizer.transform([catalog.get(i) for i in matrix.item_ids])
        position = _by_number(matrix.item_ids)
        with self._lock:
            self.members, self.ensemble, self.fit_seconds = members, weights, fit_seconds
            self._featurizer, self._content = featurizer, content
            self._rows, self._anchor_time = matrix.values, matrix.now
            self._item_ids, self._item_index = list(matrix.item_ids), dict(matrix.item_index)
            self._item_position = position
            self._user_index = dict(matrix.user_index)
            self._live, self._pending, self._since_fold = {}, {}, 0
            self._new_items, self._new_item_users = {}, {}
            self.fitted_at = time.time()

    def _fit_weights(self, matrix: InteractionMatrix, catalog: dict[str, Item]):
        """Fit every method on a validation holdout; return fitted weights, each method's chosen
        (class, frozen config, tuning) and the seconds it took."""
        max_users = min(self.max_validation_users,
                        max(50, _MAX_VALIDATION_CELLS // max(1, matrix.shape[1] * len(self.methods))))
        split = holdout(matrix, fraction=self.validation_fraction, max_users=max_users, seed=self.seed)
        candidates = split.candidates()
        zscores: dict[str, np.ndarray] = {}
        configs: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {}
        seconds: dict[str, float] = {}
        size = DataSize.of(matrix)
        for name in tqdm(self.methods, desc="validation fits", disable=not self.show_progress, leave=False):
            t0 = time.perf_counter()
            member, remembered = self._validation_member(name, size)
            member.fit(split.train, items=catalog)
            if remembered is not None:
                member.tuning = {**remembered.tuning, "reused_from": asdict(remembered.size)}
            elif self.tune and self.tuning_memo is not None and member.tuning:
                self.tuning_memo.remember(name, Remembered(member.name, member.frozen_config(), dict(member.tuning), size))
            if split.users.size:
                zscores[name] = zscore_rows(member.score_users(split.users), candidates)
            configs[name] = (member.name, member.frozen_config(), dict(member.tuning))
            seconds[name] = time.perf_counter() - t0
        if not zscores:  # nobody to validate on: fall back to the first method alone
            return EnsembleWeights(weights={n: float(n == self.methods[0]) for n in self.methods},
                                   best_member=self.methods[0]), configs, seconds
        return fit_weights(zscores, candidates, split.relevant), configs, seconds

    def _validation_member(self, name: str, size: DataSize) -> tuple[BaseRecommender, Remembered | None]:
        """A fresh member for the validation fit: configured as it was tuned on data of a similar
        size when that is remembered (and still builds), else set to tune itself."""
        remembered = self.tuning_memo.recall(name, size) if self.tune and self.tuning_memo is not None else None
        if remembered is not None:
            try:
                return recommender_class(remembered.class_name)(**remembered.config), remembered
            except (KeyError, TypeError, ValueError) as exc:  # the method changed since: tune again
                logger.info("not reusing %s's remembered tuning: %s", name, exc)
        member = create(name, tune=self.tune, seed=self.seed, show_progress=self.show_progress,
                        **self.params.get(name, {}))
        member.tuning_budget_s = self.tune_budget_s
        return member, None

    # ---- scoring -------------------------------------------------------------------------------

    def score(self, user_id: str, item_ids: Sequence[str]) -> np.ndarray:
        """Blended, per-request z-scored member scores (higher is better; mean 0 over the
        candidates). Items the user gave net negative feedback rank below every other candidate."""
        ids = list(item_ids)
        if not ids:
            return np.zeros(0, dtype=np.float32)
        self.refresh(user_id)
        # Every member lists the fitted catalog in one order: look the candidates up once.
        idx = self._item_position.gather(item_numbers.of(ids))
        known = idx >= 0
        names, weights, rows, negative = self._user_scores(user_id)
        if known.all():
            scores = rows[:, idx]
        else:
            unknown = [ids[j] for j in np.flatnonzero(~known)]  # items added since fit
            scores = np.empty((len(names), len(ids)), dtype=np.float32)
            scores[:, known] = rows[:, idx[known]]
            for k, name in enumerate(names):
                scores[k, ~known] = self.members[name].score(user_id, unknown)
        total = (weights @ zscore_rows(scores)).astype(np.float32)
        if negative:
            hit = np.fromiter(map(negative.__contains__, ids), dtype=bool, count=len(ids))
            if hit.any():
                total[hit] = total.min() - 1.0
        return total

    def _user_scores(self, user_id: str) -> tuple[list[str], np.ndarray, np.ndarray, set[str]]:
        """The weighted members, their weights, their scores of the whole fitted catalog for this
        user (one row each) and the items the user rejected. Member state changes only when users
        are folded in or items are added, so this is cached per user until then: a feed's next
        page is a gather, not a model pass."""
        generation = (self._folds, len(self._new_items))
        hit = self._score_cache.get(user_id)
        if hit is not None and hit[0] == generation:
            self._score_cache.move_to_end(user_id)
            return hit[1:]
        every = np.arange(len(self._item_ids))
        names = [name for name, w in self.ensemble.weights.items() if w > 0]
        rows = np.empty((len(names), len(self._item_ids)), dtype=np.float32)
        for k, name in enumerate(names):
            rows[k] = self.members[name].score_indexed(user_id, self._item_ids, every)
        weights = np.array([self.ensemble.weights[n] for n in names], dtype=np.float32)
        entry = (generation, names, weights, rows, self._negatives(user_id))
        self._score_cache[user_id] = entry
        while len(self._score_cache) > max(16, _SCORE_CACHE_BYTES // max(1, rows.nbytes)):
            self._score_cache.popitem(last=False)
        return entry[1:]

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Batch path for evaluation: (len(users), n_items) blended scores of fitted-user indices,
        z-scored over each user's unseen items (seen items score 0; callers mask them)."""
        first = next(iter(self.members.values()))
        rows = first.user_matrix(np.asarray(users))
        candidates = np.ones((len(users), len(self._item_ids)), dtype=bool)
        candidates[np.repeat(np.arange(len(users)), np.diff(rows.indptr)), rows.indices] = False
        total = np.zeros((len(users), len(self._item_ids)), dtype=np.float32)
        for name, w in self.ensemble.weights.items():
            if w > 0:
                total += w * zscore_rows(self.members[name].score_users(users), candidates)
        return total

    def recommend(self, user_id: str, n: int = 10, *, exclude_seen: bool = True) -> list[tuple[str, float]]:
        """Best n items over the fitted catalog plus items added since; cold users get popularity."""
        self.refresh(user_id)
        ids: list[str] = []
        n_known = len(self._item_ids)  # every member lists the fitted catalog first, in one order
        seen = self._seen(user_id) if exclude_seen else set()
        total: np.ndarray | None = None
        for name, w in self.ensemble.weights.items():
            if w <= 0:
                continue
            member_ids, scores = self.members[name].score_all(user_id)
            if total is None:
                ids = member_ids
                mask = np.fromiter((i not in seen for i in ids), dtype=bool, count=len(ids)) if seen else None
                total = np.zeros(len(ids), dtype=np.float32)
            elif member_ids[n_known:] != ids[n_known:]:  # items added since fit, listed differently
                tail = self.members[name].score(user_id, ids[n_known:])
                scores = np.concatenate([scores[:n_known], tail])
            total += w * zscore_rows(scores[None, :], None if mask is None else mask[None, :])[0]
        if total is None:
            return []
        if seen:
            total[~mask] = -np.inf
        return top_n(ids, total, n)

    def _seen(self, user_id: str) -> set[str]:
        with self._lock:
            live = self._live.get(user_id)
            if live is not None:
                return set(live) | set(self._pending.get(user_id, {}))
        return set(self._training_row(user_id)) | set(self._pending.get(user_id, {}))

    def _negatives(self, user_id: str) -> set[str]:
        row = self._live.get(user_id)
        if row is None:
            row = self._training_row(user_id)
        return {i for i, v in row.items() if v < 0}

    def _training_row(self, user_id: str) -> dict[str, float]:
        u = self._user_index.get(user_id)
        if u is None:
            return {}
        s, e = self._rows.indptr[u], self._rows.indptr[u + 1]
        return {self._item_ids[i]: float(v) for i, v in zip(self._rows.indices[s:e], self._rows.data[s:e])}

    # ---- live updates --------------------------------------------------------------------------

    def observe(self, signals: Iterable[Mapping[str, Any] | Signal]) -> int:
        """Take new signals; once `fold_in_every` have come (by the end of a call: a large batch is
        one fold-in), fold the touched users in — or, on demand, merge them into the users' rows
        at once and leave the fold-in to `refresh`. Returns how many users this call folded in."""
        with self._lock:
            for raw in signals:
                s = signal_from_dict(raw)
                delta = self._pending.setdefault(s.user_id, {})
                delta[s.content_id] = delta.get(s.content_id, 0.0) + self._strength.weight(s, anchor=self._anchor_time)
                self._since_fold += 1
            if self.fold_in_on_demand:
                self._unfolded.update(self._merge_pending_locked())
                return 0
            return self._fold_in_locked() if self._since_fold >= self.fold_in_every else 0

    def fold_in(self) -> int:
        """Fold in everything observed so far, now. Returns the number of users folded in."""
        with self._lock:
            return self._fold_in_locked()

    def refresh(self, user_id: str) -> None:
        """On demand (what scoring a user calls first; a no-op otherwise): have the user folded in,
        on a thread of this model's, together with the others asked for meanwhile — a fold-in of one
        user alone costs several times its share of a batch (BPR's and LightFM's SGD steps are
        dominated by per-step overhead), too much for a request to wait for. Until it is done the
        user scores as before."""
        if user_id not in self._unfolded or user_id in self._wanted:
            return
        with self._want_lock:
            self._wanted.add(user_id)
            if self._folding:
                return
            self._folding = True
            if self._folder is None:
                self._folder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cf-fold-in")
        self._folder.submit(self._fold_wanted)

    def _fold_wanted(self) -> None:
        with self._want_lock:
            wanted, self._wanted, self._folding = self._wanted, set(), False
        with self._lock:
            users = wanted & self._unfolded
            self._unfolded -= users
            rows = {u: {i: v for i, v in self._live[u].items() if i in self._item_index} for u in users}
            try:
                for member in self.members.values():
                    member.update_users(rows)
            except Exception:  # the next signal of theirs asks again; a retrain starts from the log
                logger.exception("folding %d users in on demand failed", len(rows))
            for user_id in users:
                self._score_cache.pop(user_id, None)
            self._folded_on_demand += len(users)

    def wait_for_fold_ins(self) -> None:
        """Until the fold-ins asked for so far are done (tests, benchmarks)."""
        if self._folder is not None:
            self._folder.submit(lambda: None).result()

    def users(self) -> list[str]:
        """Every user the model holds a row for."""
        with self._lock:
            return list(self._user_index)

    def forget_user(self, user_id: str) -> None:
        """Remove the user from every member and from the fold-in state (GDPR erasure): scored as a
        cold user from now on, and absent from what `save` writes."""
        with self._lock:
            for member in self.members.values():
                member.forget_user(user_id)
            u = self._user_index.pop(user_id, None)
            if u is not None:
                rows = self._rows.tocsr(copy=True)
                rows.data[rows.indptr[u] : rows.indptr[u + 1]] = 0.0
                rows.eliminate_zeros()
                self._rows = rows
            self._live.pop(user_id, None)
            self._pending.pop(user_id, None)
            self._unfolded.discard(user_id)
            self._score_cache.pop(user_id, None)
            for users in self._new_item_users.values():
                users.discard(user_id)

    def add_items(self, items: Iterable[Any] | Mapping[str, Item]) -> None:
        """Register catalog items that arrived after fit: scorable at once from their content."""
        with self._lock:
            fresh = {i: it for i, it in items_by_id(items).items() if i not in self._item_index}
            self._new_items.update(fresh)
            self._register_new(list(fresh))

    def _fold_in_locked(self) -> int:
        users = self._merge_pending_locked() | self._unfolded
        rows = {u: {i: v for i, v in self._live[u].items() if i in self._item_index} for u in users}
        for member in self.members.values():
            member.update_users(rows)
        self._unfolded = set()
        self._folds += 1
        self._last_fold_at = time.time()
        logger.debug("folded in %d users", len(rows))
        return len(rows)

    def _merge_pending_locked(self) -> set[str]:
        """Add the pending deltas to the users' live rows and anchor the unknown items they
        touched; returns the users whose rows changed."""
        touched_new: set[str] = set()
        for user_id, delta in self._pending.items():
            live = self._live.get(user_id)
            if live is None:
                live = self._training_row(user_id)
            for item_id, w in delta.items():
                live[item_id] = live.get(item_id, 0.0) + w
                if item_id not in self._item_index:
                    self._new_item_users.setdefault(item_id, set()).add(user_id)
                    touched_new.add(item_id)
            self._live[user_id] = live
        if touched_new:
            self._register_new(sorted(touched_new))
        users = set(self._pending)
        self._pending, self._since_fold = {}, 0
        return users

    def _register_new(self, item_ids: list[str]) -> None:
        if not item_ids or not self.members:
            return
        anchors = {i: self._anchors_for(i) for i in item_ids}
        catalog = {i: self._new_items[i] for i in item_ids if i in self._new_items}
        for member in self.members.values():
            member.add_items({i: a for i, a in anchors.items() if a[0]}, items=catalog)

    def _anchors_for(self, item_id: str) -> tuple[list[str], list[float]]:
        """Nearest known items: by content (weight 1/(1+n)) and co-interaction (n/(1+n)), where
        n is the number of users who touched the item — evidence from people wins as it grows."""
        weights: dict[int, float] = {}
        users = self._new_item_users.get(item_id, set())
        co: dict[int, float] = {}
        for user_id in users:
            for other, v in self._live.get(user_id, {}).items():
                j = self._item_index.get(other)
                if j is not None and v > 0:
                    co[j] = co.get(j, 0.0) + 1.0
        content: dict[int, float] = {}
        item = self._new_items.get(item_id)
        if item is not None and self._featurizer.n_features and self._content.shape[0]:
            idx, sims = nearest_items(self._content, self._featurizer.transform([item]), k=self.content_neighbours)[0]
            content = dict(zip(idx.tolist(), sims.tolist()))
        share_co = len(users) / (1.0 + len(users)) if co else 0.0
        for part, share in ((content, 1.0 - share_co), (_top(co, self.content_neighbours), share_co)):
            total = sum(part.values())
            for j, v in part.items():
                weights[j] = weights.get(j, 0.0) + share * v / total
        return [self._item_ids[j] for j in weights], list(weights.values())

    # ---- persistence and status ----------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the whole suite to a directory (members in subdirectories, no pickle)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with self._lock:
            for name, member in self.members.items():
                member.save(path / "members" / name)
            arrays: dict[str, np.ndarray] = dict(self._featurizer.to_arrays())
            pack_sparse(arrays, "rows", self._rows)
            pack_sparse(arrays, "content", self._content)
            with open(path / "state.npz", "wb") as fh:
                np.savez(fh, **arrays)
            manifest = {
                "format": FORMAT_VERSION,
                "config": self._config(),
                "weights": self.ensemble.weights,
                "validation_ndcg": self.ensemble.validation_ndcg,
                "best_member": self.ensemble.best_member,
                "n_validation_users": self.ensemble.n_validation_users,
                "fit_seconds": self.fit_seconds,
                "fitted_at": self.fitted_at,
                "anchor_time": self._anchor_time,
                "item_ids": self._item_ids,
                "user_ids": _by_position(self._user_index, self._rows.shape[0]),
                "live": self._live,
                "pending": self._pending,
                "since_fold": self._since_fold,
                "folds": self._folds,
                "unfolded": sorted(self._unfolded),
                "new_items": {i: _item_to_wire(it) for i, it in self._new_items.items()},
                "new_item_users": {i: sorted(u) for i, u in self._new_item_users.items()},
            }
        (path / "manifest.json").write_text(json.dumps(manifest))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AdvancedCollaborativeFiltering:
        path = Path(path)
        manifest = json.loads((path / "manifest.json").read_text())
        if manifest.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported model format {manifest.get('format')!r}")
        obj = cls(**manifest["config"])
        obj.members = {n: load_recommender(path / "members" / n) for n in obj.methods if (path / "members" / n).exists()}
        obj.ensemble = EnsembleWeights(
            weights=manifest["weights"], validation_ndcg=manifest["validation_ndcg"],
            best_member=manifest["best_member"], n_validation_users=manifest["n_validation_users"],
        )
        with np.load(path / "state.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        obj._featurizer = ItemFeaturizer.from_arrays(arrays)
        obj._rows, obj._content = unpack_sparse(arrays, "rows"), unpack_sparse(arrays, "content")
        obj.fit_seconds, obj.fitted_at = manifest["fit_seconds"], manifest["fitted_at"]
        obj._anchor_time = manifest["anchor_time"]
        obj._item_ids = manifest["item_ids"]
        obj._item_index = {i: n for n, i in enumerate(obj._item_ids)}
        obj._item_position = _by_number(obj._item_ids)
        obj._user_index = {u: n for n, u in enumerate(manifest["user_ids"]) if u}  # "": a forgotten user
        obj._live, obj._pending = manifest["live"], manifest["pending"]
        obj._since_fold, obj._folds = manifest["since_fold"], manifest["folds"]
        obj._unfolded = set(manifest.get("unfolded", ()))
        obj._new_items = items_by_id(manifest["new_items"].values())
        obj._new_item_users = {i: set(u) for i, u in manifest["new_item_users"].items()}
        return obj

    def status(self) -> dict[str, Any]:
        """What is being served: version, sizes, fit times, weights, validation and live counters."""
        first = next(iter(self.members.values()), None)
        return {
            "version": self.version,
            "fitted": bool(self.members),
            "fitted_at": self.fitted_at,
            "methods": list(self.methods),
            "weights": {n: round(w, 4) for n, w in self.ensemble.weights.items()},
            "best_member": self.ensemble.best_member,
            "validation_ndcg@10": {n: round(v, 4) for n, v in self.ensemble.validation_ndcg.items()},
            "n_validation_users": self.ensemble.n_validation_users,
            "fit_seconds": {n: round(s, 3) for n, s in self.fit_seconds.items()},
            "tuning": {n: m.tuning for n, m in self.members.items() if m.tuning},
            "members": {n: r for n, m in self.members.items() if (r := m.report())},
            "n_users": len(first.user_ids) if first else 0,
            "n_items": len(self._item_ids) + len(self._new_items),
            "n_interactions": int(self._rows.nnz),
            "fold_in_every": self.fold_in_every,
            "fold_in_on_demand": self.fold_in_on_demand,
            "pending_interactions": self._since_fold,
            "users_awaiting_fold_in": len(self._unfolded),
            "users_folded_in_on_demand": self._folded_on_demand,
            "folds": self._folds,
            "last_fold_at": self._last_fold_at,
            "items_added_since_fit": len(set(self._new_items) | set(self._new_item_users)),
        }

    def _config(self) -> dict[str, Any]:
        return {
            "methods": list(self.methods), "params": self.params, "signal_weights": self.signal_weights,
            "half_life_days": self.half_life_days, "fold_in_every": self.fold_in_every,
            "fold_in_on_demand": self.fold_in_on_demand, "tune": self.tune,
            "validation_fraction": self.validation_fraction, "max_validation_users": self.max_validation_users,
            "content_neighbours": self.content_neighbours, "seed": self.seed, "fit_unweighted": self.fit_unweighted,
        }


def _by_number(item_ids: Sequence[str]) -> ItemColumn:
    """Each fitted item's position in `item_ids`, by item number (-1 for any other number)."""
    column = ItemColumn(-1, np.int64)
    column.set_many(np.array(item_numbers.numbers(item_ids), dtype=np.intp), np.arange(len(item_ids)))
    return column


def _by_position(index: Mapping[str, int], n: int) -> list[str]:
    """Ids in row order, "" where a row's user was forgotten."""
    ids = [""] * n
    for user_id, row in index.items():
        ids[row] = user_id
    return ids


def _top(d: dict[int, float], k: int) -> dict[int, float]:
    return dict(sorted(d.items(), key=lambda kv: -kv[1])[:k])


def _item_to_wire(item: Item) -> dict[str, Any]:
    return {
        "id": item.id, "type": item.type, "text": item.text, "author_id": item.author_id,
        "created_at": item.created_at, "tags": list(item.tags), "metadata": item.metadata,
    }
