"""Offline evaluation: the same protocol for every method, stated next to every number.

Signals are aggregated to one row per (user, item) with the configured weights and decay (see
`matrix.aggregate_signals`). Protocols:
- `stratified` (default): per-user random 75/25 split of those rows (Microsoft Recommenders'
  `python_stratified_split`); every held-out row with positive net strength is relevant;
  top-k is taken over items the user has no training row for. This is the protocol of
  Recommenders' published MovieLens-100K table (NDCG@10: BiVAE 0.475, BPR 0.442), so figures on
  MovieLens are comparable with it. (Rows with only negative feedback — skips, hides — are split
  too but are never relevant; MovieLens has none.)
- `leave-last-out`: each user's latest positive row (by its last signal's time) is held out;
  negative rows stay in training.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from overdrive.models.metrics import catalog_coverage, hit_matrix, metrics_from_hits
from overdrive.models.splits import leave_last_out, stratified_split
from overdrive.models.collaborative_filtering.ensemble import top_k_indices
from overdrive.models.collaborative_filtering.matrix import (
    InteractionMatrix,
    Interactions,
)

logger = logging.getLogger(__name__)

PROTOCOLS: dict[str, str] = {
    "stratified": "per-user stratified random split {train:.0%}/{test:.0%} of (user, item) rows, seed {seed}; "
    "top-{k} over items unseen in training; every held-out positive row relevant "
    "(Microsoft Recommenders' MovieLens protocol)",
    "leave-last-out": "each user's latest positive (user, item) row held out (users with >= 2); "
    "top-{k} over items unseen in training",
}


@dataclass(frozen=True, slots=True)
class EvalSplit:
    protocol: str
    description: str
    train: InteractionMatrix
    relevant: sp.csr_matrix  # users × items, 1.0 where a held-out row is relevant
    users: np.ndarray  # user indices with at least one relevant item


def make_split(
    inter: Interactions, protocol: str, *, ratio: float = 0.75, seed: int = 0, k: int = 10, relevance: str = "positive"
) -> EvalSplit:
    """Split aggregated interactions under `protocol` (a key of PROTOCOLS).

    relevance="positive": held-out rows with net positive strength are relevant, training keeps
    signs. relevance="all": every held-out row is relevant and every row counts as a positive
    interaction of its magnitude — exactly Recommenders' protocol, where a 1★ rating is still an
    interaction.
    """
    if relevance not in ("positive", "all"):
        raise ValueError("relevance must be 'positive' or 'all'")
    if relevance == "all":
        inter = Interactions(inter.user_ids, inter.item_ids, inter.user, inter.item,
                             np.abs(inter.value), inter.last_ts, inter.now)
    if protocol == "stratified":
        train_idx, test_idx = stratified_split(inter.user, ratio=ratio, seed=seed)
    elif protocol == "leave-last-out":
        pos = np.flatnonzero(inter.value > 0)
        _, te = leave_last_out(inter.user[pos], inter.last_ts[pos])
        test_idx = pos[te]
        train_idx = np.setdiff1d(np.arange(len(inter)), test_idx)
    else:
        raise ValueError(f"unknown protocol {protocol!r}; known: {sorted(PROTOCOLS)}")
    train = InteractionMatrix.from_interactions(inter.select(train_idx))
    test = inter.select(test_idx)
    keep = test.value > 0
    relevant = sp.csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (test.user[keep], test.item[keep])), shape=train.shape
    )
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    desc = PROTOCOLS[protocol].format(train=ratio, test=1 - ratio, seed=seed, k=k)
    if relevance == "all":
        desc += "; relevance=all (every held-out row relevant, negative feedback counted as interaction)"
    return EvalSplit(protocol, desc, train, relevant, users)


def evaluate_rows(
    score_rows: Callable[[np.ndarray], np.ndarray], split: EvalSplit, *, k: int = 10, batch: int = 512
) -> dict[str, float]:
    """NDCG/precision/recall@k, MAP and catalog coverage of a batch scorer over `split.users`."""
    tops, hits, n_rel = [], [], []
    seen = split.train.values
    for start in range(0, split.users.size, batch):
        users = split.users[start : start + batch]
        scores = np.array(score_rows(users), dtype=np.float32, copy=True)
        rows = seen[users]
        r = np.repeat(np.arange(users.size), np.diff(rows.indptr))
        scores[r, rows.indices] = -np.inf
        top = top_k_indices(scores, k)
        tops.append(top)
        rel = split.relevant[users]
        hits.append(hit_matrix(top, rel))
        n_rel.append(np.diff(rel.indptr))
    if not tops:
        return {"ndcg": 0.0, "precision": 0.0, "recall": 0.0, "map": 0.0, "coverage": 0.0, "n_users": 0}
    out: dict[str, Any] = metrics_from_hits(np.vstack(hits), np.concatenate(n_rel))
    out["coverage"] = catalog_coverage(np.vstack(tops), split.train.shape[1])
    out["n_users"] = int(split.users.size)
    return out


def evaluate_model(model: Any, split: EvalSplit, *, fit_seconds: dict[str, float], k: int = 10,
                   show_progress: bool = False) -> list[dict[str, Any]]:
    """One row per member of a fitted `AdvancedCollaborativeFiltering`, then the ensemble."""
    rows = []
    names = [*model.members, "ensemble"]
    for name in tqdm(names, desc="evaluating", disable=not show_progress, leave=False):
        scorer = model.score_users if name == "ensemble" else model.members[name].score_users
        metrics = evaluate_rows(scorer, split, k=k)
        rows.append({"model": name, **metrics, "fit_seconds": round(fit_seconds.get(name, 0.0), 3)})
    return rows


def run_protocol(
    inter: Interactions,
    protocol: str,
    *,
    build_model: Callable[[], Any],
    items: Mapping[str, Any] | None,
    dataset: str,
    ratio: float = 0.75,
    seed: int = 0,
    k: int = 10,
    relevance: str = "positive",
    show_progress: bool = False,
) -> list[dict[str, Any]]:
    """Split, fit the full suite on the training part, evaluate every method and the ensemble."""
    split = make_split(inter, protocol, ratio=ratio, seed=seed, k=k, relevance=relevance)
    model = build_model()
    started = time.perf_counter()
    model.fit(split.train, items=items)
    total = time.perf_counter() - started
    fit_seconds = {**model.fit_seconds, "ensemble": total}
    logger.info("fitted %d methods in %.1fs", len(model.members), total)
    rows = evaluate_model(model, split, fit_seconds=fit_seconds, k=k, show_progress=show_progress)
    for row in rows:
        row.update({"protocol": protocol, "protocol_description": split.description, "dataset": dataset, "k": k})
        if row["model"] == "ensemble":
            row["weights"] = {n: round(w, 4) for n, w in model.weights.items() if w > 0}
            row["validation_ndcg"] = {n: round(v, 4) for n, v in model.ensemble.validation_ndcg.items()}
    return rows


def format_table(rows: Iterable[Mapping[str, Any]], *, k: int = 10) -> str:
    """A fixed-width table of evaluation rows."""
    header = f"{'model':<14}{'NDCG@' + str(k):>9}{'P@' + str(k):>8}{'R@' + str(k):>8}{'MAP':>8}{'coverage':>10}{'fit s':>9}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['model']:<14}{r['ndcg']:>9.4f}{r['precision']:>8.4f}{r['recall']:>8.4f}{r['map']:>8.4f}"
            f"{r['coverage']:>10.3f}{r['fit_seconds']:>9.2f}"
        )
    return "\n".join(lines)


# ---- data sources --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadedData:
    name: str
    signals: list[dict]
    items: list[dict]


def synthetic_data(*, n_users: int, n_items: int, interactions: int, seed: int) -> LoadedData:
    """A synthetic world sized by (user, item) pairs: about 2.4 signals per pair."""
    from overdrive.data.synthetic import WorldConfig, generate_world

    config = WorldConfig(n_users=n_users, n_items=n_items, signals_per_user=2.45 * interactions / n_users,
                         seed=seed, end=1_700_000_000.0)
    world = generate_world(config)
    name = f"synthetic world (users={n_users}, items={n_items}, topics={config.n_topics}, seed={seed})"
    return LoadedData(name, world.signals, world.items)


def load_data(
    *, data: str | None, fmt: str, items_path: str | None, n_users: int, n_items: int, interactions: int, seed: int
) -> LoadedData:
    """Signals and items from a MovieLens folder, CSV/JSONL files, or (no --data) a synthetic world."""
    if data is None:
        return synthetic_data(n_users=n_users, n_items=n_items, interactions=interactions, seed=seed)
    from overdrive.data import importers

    if fmt == "movielens":
        ds = importers.load_movielens(data)
    elif fmt == "csv":
        ds = importers.load_csv(items=items_path, interactions=data)
    elif fmt == "jsonl":
        ds = importers.load_jsonl(items=items_path, interactions=data)
    else:
        raise ValueError(f"unknown format {fmt!r}; use movielens, csv or jsonl")
    return LoadedData(f"{ds.name} ({data})", list(ds.signals()), list(ds.items()))
