"""`TwoTowerModel`: fit from the signal log, item vectors from content, user vectors live.

Training: each positive (user, item) pair is one example; its user side is the history before it
(see `data.py`). Loss: sampled softmax over the batch's unique target items plus
`mixed_negatives` items drawn uniformly from the catalog, each logit corrected by
−logq·log(expected count of the item among the candidates) (the log-Q correction: popular
items are sampled more often as negatives, so their logits are not penalised for it), plus one of
the user's explicit negatives (items with net negative feedback) as an extra candidate of that
row. Candidates the user also liked are masked. Adam; each epoch ends with recall@k on a time
holdout (the latest `validation_fraction` of targets). The learning rate decays along a cosine to
a tenth over `epochs`; training stops after `patience` epochs without improvement, the best
epoch's weights are kept and then, with `refresh`, trained for a quarter as many epochs on
everything, the holdout included, at the final learning rate (so the served model has seen the
freshest data).

Serving: `item_vectors` runs the item tower on any item's content and metadata (the id adds to
items seen in training); `user_vector` runs the user tower on the user's recent signals, newest
first, exactly as the live store keeps them — no retraining. Context features (signal metadata)
are not used in this version: the signal log holds none beyond a follow's author.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch.nn import functional as F

from overdrive.domain.codec import signal_from_dict
from overdrive.domain.types import DEFAULT_SIGNAL_WEIGHTS, Item, Signal
from overdrive.domain.weighting import SignalWeighting
from overdrive.models.collaborative_filtering.matrix import (
    InteractionMatrix,
    items_by_id,
)
from overdrive.models.two_tower import runtime as rt
from overdrive.models.two_tower.data import (
    Events,
    History,
    Targets,
    bag_history,
    causal_history,
    first_index_at_or_after,
    pairs,
    time_holdout,
)
from overdrive.models.two_tower.features import (
    ItemEncoder,
    position_bucket_scalar,
    recency_bucket_scalar,
)
from overdrive.models.two_tower.network import TwoTowerNet

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
Content = Mapping[str, Mapping[str, np.ndarray]]


class TwoTowerModel:
    """Item tower over id + content modalities + metadata; user tower over id + recent signals."""

    name = "two_tower"

    def __init__(
        self,
        *,
        dim: int = 64,
        hidden: int = 64,
        epochs: int = 12,
        batch_size: int = 512,
        learning_rate: float = 3e-3,
        weight_decay: float = 0.0,
        temperature: float = 0.07,
        logq: float = 1.0,
        mixed_negatives: int = 256,
        explicit_negatives: bool = True,
        mask_positives: bool = True,
        id_dropout: float = 0.3,
        user_id_dropout: float = 0.3,
        modality_dropout: float = 0.3,
        max_history: int = 100,
        short_history: float = 0.3,
        history: str = "bag",
        validation_fraction: float = 0.1,
        validation_users: int = 1000,
        patience: int = 0,
        refresh: bool = True,
        k: int = 10,
        signal_weights: Mapping[str, float] | None = None,
        seed: int = 0,
        runtime: str = "auto",
        threads: int = 1,
        train_threads: int | None = 1,
    ) -> None:
        if history not in ("causal", "bag"):
            raise ValueError("history must be 'causal' or 'bag'")
        if runtime not in (*rt.RUNTIMES, "auto"):
            raise ValueError(f"runtime must be one of {rt.RUNTIMES} or 'auto'")
        self.dim, self.hidden, self.epochs, self.batch_size = dim, hidden, epochs, batch_size
        self.learning_rate, self.weight_decay, self.temperature, self.logq = learning_rate, weight_decay, temperature, logq
        self.mixed_negatives, self.explicit_negatives, self.mask_positives = mixed_negatives, explicit_negatives, mask_positives
        self.id_dropout, self.user_id_dropout, self.modality_dropout = id_dropout, user_id_dropout, modality_dropout
        self.max_history, self.history, self.short_history = max_history, history, short_history
        self.validation_fraction, self.validation_users, self.patience = validation_fraction, validation_users, patience
        self.refresh, self.k, self.seed = refresh, k, seed
        self.signal_weights = dict(signal_weights or DEFAULT_SIGNAL_WEIGHTS)
        self.runtime, self.threads, self.train_threads = runtime, threads, train_threads
        self.version: str | None = None  # set by ArtifactStore
        self._weighting = SignalWeighting(self.signal_weights)
        self._net: TwoTowerNet | None = None
        self._encoder = ItemEncoder()
        self._user_ids: list[str] = []  # id-embedding rows 1..n
        self._user_row: dict[str, int] = {}
        self._types: list[str] = []  # type rows 1..n
        self._type_row: dict[str, int] = {}
        self._item_ids: list[str] = []  # items with a cached vector (the fit catalog, then added items)
        self._item_index: dict[str, int] = {}
        self._item_vecs = np.zeros((0, dim), dtype=np.float32)
        self._report: dict[str, Any] = {}
        self.fitted_at: float | None = None
        self._runner = None
        self._runner_name: str | None = None
        self._lock = threading.Lock()

    # ---- fitting -------------------------------------------------------------------------------

    def fit(self, signals: Iterable[Signal | Mapping[str, Any]], items: Mapping[str, Item] | Iterable[Any] | None = None,
            content: Content | None = None, *, now: float | None = None, progress: bool = False) -> dict[str, Any]:
        """Learn from the signal log. Returns the report (also in `status()`): epochs run, loss and
        validation recall@k per epoch, best epoch, seconds."""
        started = time.perf_counter()
        catalog = items_by_id(items)
        content = dict(content or {})
        parsed = [s if isinstance(s, Signal) else signal_from_dict(s) for s in signals]
        if now is not None:
            parsed = [s for s in parsed if s.timestamp <= now]
        item_ids = list(dict.fromkeys([*catalog, *content, *(s.content_id for s in parsed)]))
        item_index = {i: n for n, i in enumerate(item_ids)}
        user_ids = list(dict.fromkeys(s.user_id for s in parsed))
        user_index = {u: n for n, u in enumerate(user_ids)}
        types = sorted({s.signal_type for s in parsed})
        type_row = {t: n + 1 for n, t in enumerate(types)}
        strength = np.fromiter((self._weighting.strength(s) for s in parsed), dtype=np.float32, count=len(parsed))
        events = Events.build(
            [user_index[s.user_id] for s in parsed], [item_index[s.content_id] for s in parsed],
            [type_row[s.signal_type] for s in parsed], strength, [s.timestamp for s in parsed], len(user_ids),
        )
        return self._fit_events(events, user_ids, item_ids, types, catalog, content, started=started, progress=progress)

    def fit_matrix(self, matrix: InteractionMatrix, items: Mapping[str, Item] | Iterable[Any] | None = None,
                   content: Content | None = None, *, progress: bool = False) -> dict[str, Any]:
        """Learn from an interaction matrix (one event per non-zero cell, its signed value as the
        strength; no times, so histories are bags of the user's other items and validation is a
        random holdout). Users and items keep the matrix's order; catalog/content items the
        matrix lacks follow it."""
        started = time.perf_counter()
        catalog = items_by_id(items)
        content = dict(content or {})
        extra = [i for i in dict.fromkeys([*catalog, *content]) if i not in matrix.item_index]
        X = matrix.values.tocoo()
        events = Events.build(X.row, X.col, np.zeros(X.nnz, np.int64), X.data, np.full(X.nnz, np.nan),
                              matrix.shape[0])
        return self._fit_events(events, list(matrix.user_ids), [*matrix.item_ids, *extra], [], catalog, content,
                                started=started, progress=progress)

    def user_vectors_from_rows(self, user_ids: Sequence[str], rows: Sequence[tuple[np.ndarray, np.ndarray]], *,
                               use_ids: Sequence[bool] | None = None, batch: int = 1024) -> np.ndarray:
        """User vectors from interaction-matrix rows: (item positions in `known_item_vectors`,
        signed values) per user, no order or times; the `max_history` strongest entries count.
        `use_ids[n]` False scores user n from the row alone (as a user unknown at fit time)."""
        self._require_fitted()
        out = np.zeros((len(user_ids), self.dim), dtype=np.float32)
        for s in range(0, len(user_ids), batch):
            part = list(range(s, min(len(user_ids), s + batch)))
            length = max(1, min(self.max_history, max((rows[n][0].size for n in part), default=1)))
            seq_vec = np.zeros((len(part), length, self.dim), dtype=np.float32)
            w = np.zeros((len(part), length), dtype=np.float32)
            sign = np.zeros((len(part), length), dtype=np.float32)
            for r, n in enumerate(part):
                idx, vals = np.asarray(rows[n][0], np.int64), np.asarray(rows[n][1], np.float32)
                nz = vals != 0
                idx, vals = idx[nz], vals[nz]
                if idx.size > length:
                    top = np.argsort(-np.abs(vals), kind="stable")[:length]
                    idx, vals = idx[top], vals[top]
                seq_vec[r, : idx.size] = self._item_vecs[idx]
                w[r, : idx.size] = np.log1p(np.abs(vals))
                sign[r, : idx.size] = np.sign(vals)
            users = np.array([self._user_row.get(user_ids[n], 0) if (use_ids is None or use_ids[n]) else 0
                              for n in part], dtype=np.int64)
            zeros = np.zeros((len(part), length), dtype=np.int64)
            out[part] = self._run_user_tower((users, seq_vec, zeros, zeros, zeros, w, sign))
        return out

    def _fit_events(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        with _torch_threads(self.train_threads):
            return self._fit_events_inner(*args, **kwargs)

    def _fit_events_inner(self, events: Events, user_ids: list[str], item_ids: list[str], types: list[str],
                          catalog: dict[str, Item], content: Content, *, started: float,
                          progress: bool = False) -> dict[str, Any]:
        rng = np.random.default_rng(self.seed)
        n_items = len(item_ids)
        targets, neg_users, neg_items = pairs(events, n_items)
        split = _holdout(self, events, targets, n_items, rng)
        train = split.targets
        # Ids get embedding rows only where training can teach them something.
        item_counts = np.bincount(train.item, minlength=n_items)
        user_counts = np.bincount(train.user, minlength=len(user_ids))
        encoder = ItemEncoder.fit(id_items=[item_ids[i] for i in np.flatnonzero(item_counts > 0)],
                                  catalog=catalog.values(), content=content)
        trained_users = [user_ids[u] for u in np.flatnonzero(user_counts > 0)]
        user_row = {u: n + 1 for n, u in enumerate(trained_users)}
        feats = encoder.encode(item_ids, catalog, content)
        user_rows = np.array([user_row.get(u, 0) for u in user_ids], dtype=np.int64)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = TwoTowerNet(n_item_ids=encoder.n_id_rows, n_tokens=encoder.n_token_rows,
                              modal_dims=list(encoder.modalities.values()), n_users=len(trained_users) + 1,
                              n_types=len(types) + 1, hidden=self.hidden, dim=self.dim)
        trainer = _Trainer(self, net, split.events, feats, user_rows, neg_users, neg_items, n_items, rng)
        report: dict[str, Any] = {"loss": [], "validation_recall": [], "epochs": 0, "best_epoch": 0,
                                  "validation": None, "refresh_epochs": 0}
        best: tuple[float, Any, int] = (-1.0, None, 0)
        curves: dict[str, list[float]] = {name: [] for name in split.validations}
        epochs = self.epochs
        bar = _progress(epochs, progress, "two-tower epochs")
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        for epoch in range(1, epochs + 1):
            span = ((epoch - 1) / epochs, epoch / epochs)
            report["loss"].append(round(trainer.epoch(opt, train, split.limit, span), 5))
            report["epochs"] = epoch
            bar.update(1)
            for name, val in split.validations.items():
                curves[name].append(round(trainer.recall(val), 5))
            if split.criterion is not None:
                recall = curves[split.criterion][-1]
                if recall > best[0] + 1e-4:
                    best = (recall, copy.deepcopy(net.state_dict()) if self.patience else None, epoch)
                elif self.patience and epoch - best[2] >= self.patience:
                    break
        bar.close()
        report["validation_recall"] = curves.get("time", [])
        report["validation_recall_random"] = curves.get("random", [])
        if split.criterion is not None:
            if self.patience:  # early stopping: serve the best epoch's weights
                net.load_state_dict(best[1])
            at = best[2] if self.patience else report["epochs"]
            report["best_epoch"] = best[2]
            report["validation"] = {
                "criterion": split.criterion, "fraction": self.validation_fraction, "holdout_from": split.cut,
                **{f"{name}_recall@{self.k}": curve[at - 1] for name, curve in curves.items()},
                **{f"{name}_users": int(split.validations[name]["users"].size) for name in curves},
            }
            if self.refresh:
                extra = max(1, round(report["epochs"] / 4))
                trainer.events = events
                for _ in range(extra):
                    report["loss"].append(round(trainer.epoch(opt, targets, events.start[1:], (1.0, 1.0)), 5))
                report["refresh_epochs"] = extra
        else:
            report["best_epoch"] = report["epochs"]
        net.eval()
        vectors = trainer.item_vectors_all()
        with self._lock:
            self._net, self._encoder = net, encoder
            self._user_ids, self._user_row = trained_users, user_row
            self._types, self._type_row = list(types), {t: n + 1 for n, t in enumerate(types)}
            self._item_ids, self._item_index = list(item_ids), {i: n for n, i in enumerate(item_ids)}
            self._item_vecs = vectors
            self._runner, self._runner_name = None, None
            self.fitted_at = time.time()
        report.update({
            "seconds": round(time.perf_counter() - started, 2), "n_users": len(user_ids), "n_items": n_items,
            "n_events": len(events), "n_targets": len(targets), "n_train_targets": len(train),
            "n_negative_pairs": int(neg_users.size),
        })
        self._report = report
        log.info("two-tower fitted: %d users, %d items, %d targets, %d epochs (best %d) in %.1fs",
                 len(user_ids), n_items, len(targets), report["epochs"], report["best_epoch"], report["seconds"])
        return dict(report)

    # ---- serving -------------------------------------------------------------------------------

    @property
    def fitted(self) -> bool:
        return self._net is not None

    def item_vectors(self, item_ids: Sequence[str], items: Mapping[str, Item] | Iterable[Any] | None = None,
                     content: Content | None = None) -> np.ndarray:
        """(n, dim) L2-normalised item-tower outputs from the given content and metadata (plus the
        id embedding for items seen in training). Items never seen in training work from content
        and metadata alone; an item with nothing known gets the tower's "unknown item" vector."""
        self._require_fitted()
        catalog = items_by_id(items)
        feats = self._encoder.encode(list(item_ids), catalog, content or {})
        return _run_item_tower(self._net, feats, list(self._encoder.modalities))

    def has_features(self, item_ids: Sequence[str], items: Mapping[str, Item] | Iterable[Any] | None = None,
                     content: Content | None = None) -> np.ndarray:
        """Per item: True where the item tower reads something about it (a known id, a known
        metadata token or a modality vector of the fitted size)."""
        self._require_fitted()
        feats = self._encoder.encode(list(item_ids), items_by_id(items), content or {})
        return (feats["ids"] > 0) | (feats["mask"].sum(axis=1) > 0)

    def add_items(self, item_ids: Sequence[str], items: Mapping[str, Item] | Iterable[Any] | None = None,
                  content: Content | None = None) -> np.ndarray:
        """`item_vectors`, also remembered, so `user_vector` reads these items in sequences."""
        vecs = self.item_vectors(item_ids, items, content)
        with self._lock:
            ids, index, cache = list(self._item_ids), dict(self._item_index), self._item_vecs
            extra = []
            for n, item_id in enumerate(item_ids):
                if item_id in index:
                    cache = cache.copy() if cache is self._item_vecs else cache
                    cache[index[item_id]] = vecs[n]
                else:
                    index[item_id] = len(ids)
                    ids.append(item_id)
                    extra.append(vecs[n])
            if extra:
                cache = np.vstack([cache, np.asarray(extra, dtype=np.float32)])
            self._item_ids, self._item_index, self._item_vecs = ids, index, cache
        return vecs

    def known_item_vectors(self) -> tuple[list[str], np.ndarray]:
        """(ids, (n, dim) vectors) of every item with a remembered vector: the fit catalog and
        items added since — what the vector index holds."""
        return list(self._item_ids), self._item_vecs

    def user_vector(self, user_id: str, recent: Sequence[Signal | Mapping[str, Any]], *, now: float,
                    item_vectors: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """(dim,) L2-normalised user vector from the user's recent signals, newest first (the live
        store's order). Items are read from `item_vectors` when given there, else from the
        remembered vectors; signals on items neither knows are skipped. Unknown users are fine."""
        return self.user_vectors([user_id], [recent], now=now, item_vectors=item_vectors)[0]

    def user_vectors(self, user_ids: Sequence[str], recents: Sequence[Sequence[Signal | Mapping[str, Any]]], *,
                     now: float | Sequence[float], item_vectors: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """`user_vector` for many users at once (one tower call)."""
        self._require_fitted()
        nows = [now] * len(user_ids) if isinstance(now, (int, float)) else list(now)
        rows = [self._sequence(r, t, item_vectors) for r, t in zip(recents, nows)]
        length = max(1, max(len(r[0]) for r in rows)) if rows else 1
        b = len(user_ids)
        seq_vec = np.zeros((b, length, self.dim), dtype=np.float32)
        ints = np.zeros((3, b, length), dtype=np.int64)
        w = np.zeros((b, length), dtype=np.float32)
        sign = np.zeros((b, length), dtype=np.float32)
        for r, (vecs, meta) in enumerate(rows):
            n = len(vecs)
            if n:
                seq_vec[r, :n] = vecs
                m = np.asarray(meta, dtype=np.float64)
                ints[:, r, :n] = m[:, :3].T
                w[r, :n] = m[:, 3]
                sign[r, :n] = m[:, 4]
        users = np.array([self._user_row.get(u, 0) for u in user_ids], dtype=np.int64)
        return self._run_user_tower((users, seq_vec, ints[0], ints[1], ints[2], w, sign))

    def _sequence(self, recent, now: float, extra: Mapping[str, np.ndarray] | None):
        vecs: list[np.ndarray] = []
        meta: list[tuple[int, int, int, float, float]] = []
        index, cache, type_row, strength = self._item_index, self._item_vecs, self._type_row, self._weighting.strength
        rank = 0
        for raw in recent:
            if rank >= self.max_history:
                break
            s = raw if isinstance(raw, Signal) else signal_from_dict(raw)
            value = strength(s)
            if value == 0.0:
                continue
            vec = extra.get(s.content_id) if extra else None
            if vec is None:
                j = index.get(s.content_id)
                if j is None:
                    rank += 1
                    continue
                vec = cache[j]
            vecs.append(vec)
            meta.append((type_row.get(s.signal_type, 0), recency_bucket_scalar(now - s.timestamp),
                         position_bucket_scalar(rank), math.log1p(abs(value)), 1.0 if value > 0 else -1.0))
            rank += 1
        return vecs, meta

    def _run_user_tower(self, inputs: rt.UserInputs) -> np.ndarray:
        runner = self._runner
        if runner is None:
            with self._lock:
                if self._runner is None:
                    self._runner_name, self._runner = rt.build_runner(self._net.user, self.runtime, dim=self.dim,
                                                                      threads=self.threads)
                runner = self._runner
        return runner(inputs)

    @property
    def runtime_in_use(self) -> str | None:
        """The user-tower runtime serving now (None until the first user vector)."""
        return self._runner_name

    @staticmethod
    def score(user_vector: np.ndarray, item_vectors: np.ndarray) -> np.ndarray:
        """Cosine scores (both sides are L2-normalised): item_vectors @ user_vector."""
        return np.asarray(item_vectors, dtype=np.float32) @ np.asarray(user_vector, dtype=np.float32)

    # ---- persistence ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """A directory: `meta.json` (config, vocabularies, report) and `weights.safetensors` (the
        networks' state_dict and the remembered item vectors). No pickle anywhere."""
        from safetensors.numpy import save_file

        self._require_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays, meta = self.to_arrays()
        save_file(arrays, str(path / "weights.safetensors"))
        (path / "meta.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TwoTowerModel:
        from safetensors.numpy import load_file

        path = Path(path)
        meta = json.loads((path / "meta.json").read_text())
        return cls.from_arrays(load_file(str(path / "weights.safetensors")), meta)

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, JSON-able meta) — everything a saved model holds."""
        arrays = {f"net/{k}": v.detach().cpu().numpy().copy() for k, v in self._net.state_dict().items()}
        arrays["item_vectors"] = np.ascontiguousarray(self._item_vecs, dtype=np.float32)
        meta = {
            "format": FORMAT_VERSION, "class": self.name, "config": self.config(),
            "encoder": self._encoder.to_json(), "user_ids": self._user_ids, "types": self._types,
            "item_ids": self._item_ids, "report": self._report, "fitted_at": self.fitted_at,
        }
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> TwoTowerModel:
        if meta.get("format") != FORMAT_VERSION or meta.get("class") != cls.name:
            raise ValueError(f"not a two-tower model of format {FORMAT_VERSION}: {meta.get('class')!r} {meta.get('format')!r}")
        obj = cls(**meta["config"])
        obj._encoder = ItemEncoder.from_json(meta["encoder"])
        obj._user_ids = list(meta["user_ids"])
        obj._user_row = {u: n + 1 for n, u in enumerate(obj._user_ids)}
        obj._types = list(meta["types"])
        obj._type_row = {t: n + 1 for n, t in enumerate(obj._types)}
        obj._item_ids = list(meta["item_ids"])
        obj._item_index = {i: n for n, i in enumerate(obj._item_ids)}
        obj._item_vecs = np.asarray(arrays["item_vectors"], dtype=np.float32)
        net = TwoTowerNet(n_item_ids=obj._encoder.n_id_rows, n_tokens=obj._encoder.n_token_rows,
                          modal_dims=list(obj._encoder.modalities.values()), n_users=len(obj._user_ids) + 1,
                          n_types=len(obj._types) + 1, hidden=obj.hidden, dim=obj.dim)
        net.load_state_dict({k[4:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("net/")})
        obj._net = net.eval()
        obj._report, obj.fitted_at = dict(meta.get("report") or {}), meta.get("fitted_at")
        return obj

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-able)."""
        return {
            "dim": self.dim, "hidden": self.hidden, "epochs": self.epochs, "batch_size": self.batch_size,
            "learning_rate": self.learning_rate, "weight_decay": self.weight_decay, "temperature": self.temperature,
            "logq": self.logq, "mixed_negatives": self.mixed_negatives, "explicit_negatives": self.explicit_negatives,
            "mask_positives": self.mask_positives, "id_dropout": self.id_dropout,
            "user_id_dropout": self.user_id_dropout, "modality_dropout": self.modality_dropout,
            "max_history": self.max_history, "history": self.history, "short_history": self.short_history,
            "validation_fraction": self.validation_fraction, "validation_users": self.validation_users,
            "patience": self.patience, "refresh": self.refresh, "k": self.k, "signal_weights": self.signal_weights,
            "seed": self.seed, "runtime": self.runtime, "threads": self.threads,
            "train_threads": self.train_threads,
        }

    def status(self) -> dict[str, Any]:
        """What is being served: version, fit report (epochs, loss curve, validation recall),
        dimensions, modalities, sizes, fitted_at, user-tower runtime."""
        r = self._report
        return {
            "version": self.version, "fitted": self.fitted, "fitted_at": self.fitted_at,
            "epochs": r.get("epochs", 0), "best_epoch": r.get("best_epoch", 0),
            "refresh_epochs": r.get("refresh_epochs", 0), "loss": list(r.get("loss", [])),
            "validation_recall": list(r.get("validation_recall", [])),
            "validation_recall_random": list(r.get("validation_recall_random", [])), "validation": r.get("validation"),
            "fit_seconds": r.get("seconds"),
            "dims": {"output": self.dim, "hidden": self.hidden, **self._encoder.modalities},
            "modalities": ["metadata", *self._encoder.modalities],
            "n_users": len(self._user_ids), "n_items": len(self._item_ids),
            "n_id_items": len(self._encoder.item_ids), "n_tokens": len(self._encoder.token_vocab),
            "history": self.history, "max_history": self.max_history,
            "runtime": self._runner_name or self.runtime,
        }

    def _require_fitted(self) -> None:
        if self._net is None:
            raise RuntimeError("two-tower model is not fitted")


# ---- training ------------------------------------------------------------------------------------

_THREADS_LOCK = threading.Lock()


@contextlib.contextmanager
def _torch_threads(n: int | None):
    """torch's intra-op threads set to `n` for the duration (process-wide; restored after). One
    thread is the default: the batches are small, and OpenMP's barrier between two threads on two
    cores that are also serving requests costs far more than it gains (measured: an element-wise op
    on a loaded 2-core machine ran 300x slower with 2 threads than with 1)."""
    if not n:
        yield
        return
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


def _tensors(feats: Mapping[str, np.ndarray], rows: np.ndarray | None, modalities: list[str]):
    def take(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a if rows is None else a[rows]))

    return (take(feats["ids"]), take(feats["tokens"]), take(feats["token_w"]), take(feats["mask"]),
            [take(feats[f"m:{m}"]) for m in modalities])


def _run_item_tower(net: TwoTowerNet, feats: Mapping[str, np.ndarray], modalities: list[str],
                    batch: int = 8192) -> np.ndarray:
    n = feats["ids"].shape[0]
    out = np.zeros((n, net.item.mlp[-1].out_features), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, n, batch):
            rows = np.arange(s, min(n, s + batch))
            ids, tok, tw, mask, modal = _tensors(feats, rows, modalities)
            out[rows] = net.item(ids, tok, tw, mask, modal).numpy()
    return out


@dataclass(slots=True)
class _Split:
    targets: Targets  # what trains before the refresh
    events: Events  # where histories come from before the refresh
    limit: np.ndarray  # per user: histories (bag mode) use events before this index
    validations: dict[str, dict[str, Any]]  # "time" and/or "random"
    criterion: str | None  # the validation early stopping and best epoch follow
    cut: float | None = None


def _holdout(m: TwoTowerModel, events: Events, targets: Targets, n_items: int, rng: np.random.Generator) -> _Split:
    """Validation data carved from the fit's own data.

    - "time" (events with times): targets at or after the (1 − validation_fraction) quantile of
      target times; each validation user's history is what they did before that cut. Reported
      always; the early-stopping criterion in causal mode.
    - "random" (bag mode, and matrices, which have no times): `validation_fraction` of the
      remaining targets of up to `validation_users` users, their events removed from training
      histories; the history is the user's other events. The criterion in bag mode, whose
      training objective it matches (a user's other items, not the next ones)."""
    n_users = events.start.size - 1
    out = _Split(targets, events, events.start[1:], {}, None)
    if m.validation_fraction <= 0 or len(targets) < 20:
        return out
    if events.ordered:
        cut = time_holdout(targets, m.validation_fraction)
        if cut is not None:
            end = first_index_at_or_after(events, cut)
            late = targets.select(np.flatnonzero(targets.ts >= cut))
            users = np.unique(late.user)
            users = _sample(users[end[users] > events.start[users]], m.validation_users, rng)
            if users.size:
                keep = np.isin(late.user, users)
                relevant = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (late.user[keep], late.item[keep])),
                                         shape=(n_users, n_items))[users]
                out.validations["time"] = {
                    "users": users, "relevant": relevant,
                    "hist": causal_history(events, users, end[users], np.full(users.size, cut), m.max_history),
                    "seen": _rows_matrix(events, users, events.start[users], end[users], n_items)}
            out.targets, out.limit, out.cut = targets.select(np.flatnonzero(targets.ts < cut)), end, cut
    if m.history == "bag" or not events.ordered:
        train = out.targets
        users = _sample(np.flatnonzero(np.bincount(train.user, minlength=n_users) >= 3), m.validation_users, rng)
        chosen = np.flatnonzero(np.isin(train.user, users))
        held = chosen[rng.random(chosen.size) < m.validation_fraction]
        if held.size:
            held_key = train.user[held] * n_items + train.item[held]
            kept = events.select(~np.isin(events.user * n_items + events.item, held_key))
            limit = first_index_at_or_after(kept, out.cut) if out.cut is not None else kept.start[1:]
            users = np.unique(train.user[held])
            relevant = sp.csr_matrix((np.ones(held.size, np.float32), (train.user[held], train.item[held])),
                                     shape=(n_users, n_items))[users]
            last = np.maximum(limit[users] - 1, 0)
            ref = np.where(limit[users] > kept.start[users], kept.ts[last], np.nan)
            out.validations["random"] = {
                "users": users, "relevant": relevant,
                "hist": causal_history(kept, users, limit[users], ref, m.max_history),
                "seen": _rows_matrix(kept, users, kept.start[users], limit[users], n_items)}
            rest = train.select(np.setdiff1d(np.arange(len(train)), held))
            out.targets = Targets(rest.user, rest.item, np.zeros(len(rest), np.int64), rest.ts, rest.strength)
            out.events, out.limit = kept, limit
    if "random" in out.validations and m.history == "bag":
        out.criterion = "random"
    elif "time" in out.validations:
        out.criterion = "time"
    return out


def _sample(users: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(users, size=n, replace=False)) if users.size > n else users


def _rows_matrix(events: Events, users: np.ndarray, lo: np.ndarray, hi: np.ndarray, n_items: int) -> sp.csr_matrix:
    """(len(users), n_items) indicator of the items in events [lo, hi) of each user."""
    rows = [events.item[a:b] for a, b in zip(lo, hi)]
    sizes = [r.size for r in rows]
    cols = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    m = sp.csr_matrix((np.ones(cols.size, np.float32), (np.repeat(np.arange(len(rows)), sizes), cols)),
                      shape=(len(rows), n_items))
    m.data[:] = 1.0
    return m


class _Trainer:
    """One fit's training state: features as arrays, sampling, the loss, validation."""

    def __init__(self, model: TwoTowerModel, net: TwoTowerNet, events: Events, feats: dict[str, np.ndarray],
                 user_rows: np.ndarray, neg_users: np.ndarray, neg_items: np.ndarray, n_items: int,
                 rng: np.random.Generator) -> None:
        self.m, self.net, self.events, self.feats = model, net, events, feats
        self.user_rows, self.n_items, self.rng = user_rows, n_items, rng
        self.modalities = [k[2:] for k in feats if k.startswith("m:")]
        n_users = events.start.size - 1
        order = np.argsort(neg_users, kind="stable")
        self.neg_items = neg_items[order]
        self.neg_start = np.concatenate([[0], np.cumsum(np.bincount(neg_users, minlength=n_users))]).astype(np.int64)
        self.positives: sp.csr_matrix | None = None
        self.pop = np.zeros(n_items, dtype=np.float64)

    def _prepare(self, targets: Targets) -> None:
        n_users = self.events.start.size - 1
        self.positives = sp.csr_matrix((np.ones(len(targets), np.float32), (targets.user, targets.item)),
                                       shape=(n_users, self.n_items))
        counts = np.bincount(targets.item, minlength=self.n_items).astype(np.float64)
        self.pop = counts / max(counts.sum(), 1.0)

    def epoch(self, opt: torch.optim.Optimizer, targets: Targets, limit: np.ndarray, span: tuple[float, float]) -> float:
        """One pass over `targets`; the learning rate follows a cosine from `learning_rate` down to
        a tenth of it over the planned epochs (`span`: this epoch's share of that schedule)."""
        self._prepare(targets)
        self.net.train()
        order = self.rng.permutation(len(targets))
        total, n = 0.0, 0
        b = self.m.batch_size
        for s in range(0, order.size, b):
            rows = order[s : s + b]
            if rows.size < 2:
                continue
            progress = span[0] + (span[1] - span[0]) * s / max(order.size, 1)
            for group in opt.param_groups:
                group["lr"] = self.m.learning_rate * (0.1 + 0.45 * (1.0 + math.cos(math.pi * progress)))
            loss = self._loss(targets.select(rows), limit)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * rows.size
            n += rows.size
        return total / max(n, 1)

    def _history(self, t: Targets, limit: np.ndarray) -> History:
        m = self.m
        if m.history == "causal" and self.events.ordered:
            hist = causal_history(self.events, t.user, t.first, t.ts, m.max_history)
        else:
            hist = bag_history(self.events, t.user, limit[t.user], t.item, m.max_history, self.rng)
        if m.short_history > 0:
            # Some rows keep only their first k entries, k log-uniform in [1, max_history]: a user
            # with three signals is a case training has seen, not only users with a hundred.
            short = self.rng.random(len(t)) < m.short_history
            k = np.exp(self.rng.random(len(t)) * math.log(m.max_history)).astype(np.int64)
            cut = np.where(short, np.maximum(k, 1), m.max_history)
            keep = np.arange(hist.valid.shape[1])[None, :] < cut[:, None]
            hist.valid &= keep
            hist.w = np.where(keep, hist.w, 0.0).astype(np.float32)
            hist.sign = np.where(keep, hist.sign, 0.0).astype(np.float32)
        return hist

    def _item_batch(self, uniq: np.ndarray, train: bool) -> torch.Tensor:
        ids, tok, tw, mask, modal = _tensors(self.feats, uniq, self.modalities)
        if train:
            rng, m = self.rng, self.m
            if m.id_dropout > 0:
                ids = ids * torch.from_numpy(rng.random(uniq.size) >= m.id_dropout)
            if m.modality_dropout > 0:
                mask = mask * torch.from_numpy((rng.random(mask.shape) >= m.modality_dropout).astype(np.float32))
        return self.net.item(ids, tok, tw, mask, modal)

    def _user_batch(self, users: np.ndarray, hist: History, table: torch.Tensor, seq_idx: np.ndarray,
                    train: bool) -> torch.Tensor:
        rows = self.user_rows[users]
        if train and self.m.user_id_dropout > 0:
            rows = np.where(self.rng.random(rows.size) < self.m.user_id_dropout, 0, rows)
        return self.net.user.forward_indexed(
            torch.from_numpy(rows), table, torch.from_numpy(seq_idx), torch.from_numpy(hist.type),
            torch.from_numpy(hist.rec), torch.from_numpy(hist.pos), torch.from_numpy(hist.w), torch.from_numpy(hist.sign))

    def _loss(self, t: Targets, limit: np.ndarray) -> torch.Tensor:
        m, rng = self.m, self.rng
        b = len(t)
        hist = self._history(t, limit)
        uniform = rng.integers(self.n_items, size=m.mixed_negatives) if m.mixed_negatives else np.zeros(0, np.int64)
        neg = np.full(b, -1, dtype=np.int64)
        if m.explicit_negatives:
            lo, hi = self.neg_start[t.user], self.neg_start[t.user + 1]
            has = hi > lo
            pick = lo + (rng.random(b) * (hi - lo)).astype(np.int64)
            neg[has] = self.neg_items[pick[has]]
        uniq, inv = np.unique(np.concatenate([t.item, hist.item.ravel(), uniform, neg[neg >= 0]]), return_inverse=True)
        V = self._item_batch(uniq, train=True)
        hist_inv = inv[b : b + hist.item.size].reshape(hist.item.shape)
        U = self._user_batch(t.user, hist, V, hist_inv, train=True)
        cols = np.unique(np.concatenate([t.item, uniform]))
        col_pos = np.searchsorted(uniq, cols)
        logits = U @ V[torch.from_numpy(col_pos)].T / m.temperature
        if m.logq:
            expected = b * self.pop[cols] + m.mixed_negatives / self.n_items
            logits = logits - m.logq * torch.from_numpy(np.log(np.maximum(expected, 1e-12)).astype(np.float32))
        label = np.searchsorted(cols, t.item)
        if m.mask_positives:
            liked = self.positives[t.user][:, cols].toarray() > 0
            liked[np.arange(b), label] = False
            logits = logits.masked_fill(torch.from_numpy(liked), -1e9)
        if (neg >= 0).any():
            nv = V[torch.from_numpy(np.searchsorted(uniq, np.maximum(neg, 0)))]
            extra = (U * nv).sum(dim=1, keepdim=True) / m.temperature
            extra = extra.masked_fill(torch.from_numpy(neg[:, None] < 0), -1e9)
            logits = torch.cat([logits, extra], dim=1)
        return F.cross_entropy(logits, torch.from_numpy(label))

    # -- validation --

    def item_vectors_all(self) -> np.ndarray:
        self.net.eval()
        return _run_item_tower(self.net, self.feats, self.modalities)

    def recall(self, val: dict[str, Any]) -> float:
        from overdrive.models.metrics import hit_matrix

        V = self.item_vectors_all()
        out = []
        for s in range(0, val["users"].size, 512):
            sl = slice(s, s + 512)
            users = val["users"][sl]
            h = val["hist"]
            hist = History(h.item[sl], h.type[sl], h.rec[sl], h.pos[sl], h.w[sl], h.sign[sl], h.valid[sl])
            with torch.inference_mode():
                U = self._user_batch(users, hist, torch.from_numpy(V), hist.item, train=False).numpy()
            scores = U @ V.T
            seen = val["seen"][sl]
            scores[np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr)), seen.indices] = -np.inf
            k = min(self.m.k, scores.shape[1])
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            rel = val["relevant"][sl]
            hits = hit_matrix(top, rel).sum(axis=1)
            out.append(hits / np.maximum(np.diff(rel.indptr), 1))
        return float(np.concatenate(out).mean()) if out else 0.0
