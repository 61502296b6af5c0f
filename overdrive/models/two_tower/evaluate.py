"""Offline evaluation of the two-tower model, against baselines in the same run.

Protocols (signals aggregated per (user, item) with the default signal weights and decay, as the
collaborative evaluation does):
- `stratified`: the collaborative evaluation's own split (per-user random 75/25 of (user, item)
  rows, top-k over items unseen in training, held-out positive rows relevant). The two-tower model
  trains on the signals of the training rows; its user vectors come from each user's newest
  training signals. Every collaborative member and their ensemble are fitted and evaluated on the
  same split by the collaborative machinery (`evaluate.run_protocol`).
- `cold-items`: a random `cold_fraction` of the catalog is held out with all its interactions;
  models train on the rest (and never see the held-out items, not even their metadata). Each
  user with a held-out positive (user, item) row ranks all held-out items; those rows are
  relevant. Coverage is the share of held-out items in someone's top k. Baselines: a content
  profile (the user's strength-weighted mean text embedding of positive training items, cosine
  to each cold item's text embedding), LightFM with item features (tags, author, type and text
  words; cold items scored from their features), popularity transferred through metadata (the
  training interactions of the cold item's author and tags) and random order (expected values).

Text embeddings are computed by the caller (the CLI uses overdrive.content's sentence encoder);
this module takes them as `content` ({item id: {"text": vector}}).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from overdrive.domain.codec import signal_from_dict
from overdrive.domain.types import Item, Signal
from overdrive.models.collaborative_filtering.ensemble import top_k_indices
from overdrive.models.collaborative_filtering.evaluate import (
    EvalSplit,
    evaluate_rows,
    make_split,
    run_protocol,
)
from overdrive.models.collaborative_filtering.matrix import (
    InteractionMatrix,
    Interactions,
    aggregate_signals,
)
from overdrive.models.metrics import catalog_coverage, hit_matrix, metrics_from_hits
from overdrive.models.two_tower.model import TwoTowerModel

log = logging.getLogger(__name__)
Content = Mapping[str, Mapping[str, np.ndarray]]


@dataclass(frozen=True, slots=True)
class Context:
    """What both protocols share: the parsed signals, their aggregation and the catalog."""

    signals: list[Signal]
    inter: Interactions
    catalog: dict[str, Item]
    content: Content
    signal_weights: Mapping[str, float]
    half_life_days: float | None
    dataset: str


def newest_first(signals: Sequence[Signal]) -> dict[str, list[Signal]]:
    by_user: dict[str, list[Signal]] = {}
    for s in sorted(signals, key=lambda s: -s.timestamp):
        by_user.setdefault(s.user_id, []).append(s)
    return by_user


def _row(model: str, metrics: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": model, **{k: metrics[k] for k in ("ndcg", "precision", "recall", "map", "coverage", "n_users")},
            **extra}


# ---- (a) the stratified protocol -----------------------------------------------------------------


def stratified(ctx: Context, *, params: Mapping[str, Any], cf_methods: Sequence[str], tune: bool = True,
               seed: int = 0, k: int = 10, ensemble_with: bool = False, progress: bool = False) -> dict[str, Any]:
    """Rows for the two-tower model and every collaborative member (and ensemble), on one split;
    with `ensemble_with`, also the ensemble with the two_tower member added (same split)."""
    from overdrive.models.collaborative_filtering.advanced import (
        AdvancedCollaborativeFiltering,
    )

    split = make_split(ctx.inter, "stratified", seed=seed, k=k)
    train_pairs = _pairs(split.train)
    train_signals = [s for s in ctx.signals if (s.user_id, s.content_id) in train_pairs]
    model = TwoTowerModel(**params)
    t0 = time.perf_counter()
    report = model.fit(train_signals, ctx.catalog, ctx.content, progress=progress)
    fit_s = time.perf_counter() - t0
    rows = [_row("two_tower", evaluate_rows(_scorer(model, split, ctx, train_signals), split, k=k),
                 fit_seconds=round(fit_s, 2), n_train_rows=int(split.train.nnz), n_train_signals=len(train_signals),
                 epochs=report["epochs"], best_epoch=report["best_epoch"])]

    def suite(methods: Sequence[str]) -> list[dict[str, Any]]:
        return run_protocol(
            ctx.inter, "stratified",
            build_model=lambda: AdvancedCollaborativeFiltering(
                methods=list(methods), signal_weights=ctx.signal_weights, half_life_days=ctx.half_life_days,
                tune=tune, seed=seed, show_progress=progress, fit_unweighted=True),
            items=ctx.catalog, dataset=ctx.dataset, seed=seed, k=k)

    cf_rows = suite(cf_methods)
    rows += [_row(r["model"], r, fit_seconds=r["fit_seconds"], **({"weights": r["weights"]} if "weights" in r else {}))
             for r in cf_rows]
    out: dict[str, Any] = {"rows": rows, "description": split.description, "model": model, "split": split,
                           "train_signals": train_signals}
    if ensemble_with:
        with_rows = suite([*cf_methods, "two_tower"])
        ens = next(r for r in with_rows if r["model"] == "ensemble")
        member = next(r for r in with_rows if r["model"] == "two_tower")
        out["ensemble_with_two_tower"] = {
            "ndcg": ens["ndcg"], "recall": ens["recall"], "coverage": ens["coverage"],
            "weights": ens["weights"], "validation_ndcg": ens["validation_ndcg"],
            "fit_seconds": ens["fit_seconds"], "two_tower_member_ndcg": member["ndcg"],
            "two_tower_member_fit_seconds": member["fit_seconds"],
        }
    return out


def _pairs(matrix: InteractionMatrix) -> set[tuple[str, str]]:
    X = matrix.values.tocoo()
    return {(matrix.user_ids[u], matrix.item_ids[i]) for u, i in zip(X.row.tolist(), X.col.tolist())}


def _scorer(model: TwoTowerModel, split: EvalSplit, ctx: Context, train_signals: Sequence[Signal]):
    by_user = newest_first(train_signals)
    V = model.item_vectors(split.train.item_ids, ctx.catalog, ctx.content)
    now = ctx.inter.now

    def score_rows(users: np.ndarray) -> np.ndarray:
        ids = [split.train.user_ids[u] for u in users]
        return model.user_vectors(ids, [by_user.get(u, []) for u in ids], now=now) @ V.T

    return score_rows


# ---- (b) item cold start -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ColdSplit:
    cold: list[str]  # held-out item ids
    train_signals: list[Signal]
    train: Interactions  # aggregated training rows (cold items have no rows)
    users: list[str]  # users with a held-out positive row
    relevant: sp.csr_matrix  # users × cold items
    now: float


def cold_split(ctx: Context, *, fraction: float = 0.2, seed: int = 0) -> ColdSplit:
    rng = np.random.default_rng(seed)
    ids = list(ctx.catalog) or list(ctx.inter.item_ids)
    cold = sorted(rng.choice(ids, size=max(1, round(fraction * len(ids))), replace=False).tolist())
    cold_set = set(cold)
    train_signals = [s for s in ctx.signals if s.content_id not in cold_set]
    train = aggregate_signals(train_signals, signal_weights=ctx.signal_weights, half_life_days=ctx.half_life_days,
                              items=[i for i in ids if i not in cold_set], now=ctx.inter.now)
    inter = ctx.inter
    col = {c: n for n, c in enumerate(cold)}
    rows = [(inter.user_ids[u], col[inter.item_ids[i]]) for u, i, v in
            zip(inter.user.tolist(), inter.item.tolist(), inter.value.tolist()) if v > 0 and inter.item_ids[i] in col]
    users = sorted({u for u, _ in rows})
    uidx = {u: n for n, u in enumerate(users)}
    relevant = sp.csr_matrix((np.ones(len(rows), np.float32), ([uidx[u] for u, _ in rows], [c for _, c in rows])),
                             shape=(len(users), len(cold)))
    relevant.data[:] = 1.0
    return ColdSplit(cold, train_signals, train, users, relevant, inter.now)


def _metrics(scores: np.ndarray, cs: ColdSplit, k: int) -> dict[str, Any]:
    top = top_k_indices(scores, k)
    out: dict[str, Any] = metrics_from_hits(hit_matrix(top, cs.relevant), np.diff(cs.relevant.indptr))
    out["coverage"] = catalog_coverage(top, len(cs.cold))
    out["n_users"] = len(cs.users)
    return out


def cold_start(ctx: Context, *, params: Mapping[str, Any], fraction: float = 0.2, seed: int = 0, k: int = 10,
               member: bool = True, progress: bool = False) -> dict[str, Any]:
    """Rows for the two-tower model and the baselines on held-out (cold) items."""
    cs = cold_split(ctx, fraction=fraction, seed=seed)
    cold_set = set(cs.cold)
    warm_catalog = {i: it for i, it in ctx.catalog.items() if i not in cold_set}
    warm_content = {i: c for i, c in ctx.content.items() if i not in cold_set}
    rows = []

    model = TwoTowerModel(**params)
    t0 = time.perf_counter()
    report = model.fit(cs.train_signals, warm_catalog, warm_content, progress=progress)
    fit_s = time.perf_counter() - t0
    V = model.item_vectors(cs.cold, ctx.catalog, ctx.content)
    by_user = newest_first(cs.train_signals)
    U = model.user_vectors(cs.users, [by_user.get(u, []) for u in cs.users], now=cs.now)
    rows.append(_row("two_tower", _metrics(U @ V.T, cs, k), fit_seconds=round(fit_s, 2), epochs=report["epochs"],
                     best_epoch=report["best_epoch"]))

    rows.append(_row("content_profile", _metrics(_content_profile(ctx, cs), cs, k)))
    rows.extend(_lightfm(ctx, cs, warm_catalog, k, seed))
    fitted_member = None
    if member:
        row, fitted_member = _member(ctx, cs, warm_catalog, k, seed, progress)
        rows.append(row)
    rows.append(_row("popularity", _metrics(_metadata_popularity(ctx, cs), cs, k)))
    rows.append(_row("random", _random_metrics(cs, k, seed)))
    return {"rows": rows, "n_cold": len(cs.cold), "n_users": len(cs.users), "n_relevant": int(cs.relevant.nnz),
            "model": model, "similar": similar_items(ctx, cs, model, fitted_member, k=k)}


def similar_items(ctx: Context, cs: ColdSplit, model: TwoTowerModel, member: Any = None, *, k: int = 10) -> list[dict[str, Any]]:
    """Similar items for text-only items: every held-out item stripped to its text (no tags,
    author or type), its k nearest among the others by cosine, judged by who engaged with both
    in the held-out interactions (gain of a neighbour: co-engaging users / sqrt(product of each
    one's users); NDCG@k against the ideal order of those gains). Rows: the text embedding alone,
    the item tower on the same text (its model: sentence text), and the ensemble member's item
    tower (hashed text, as the service serves it); and each tower's vector beside the text
    embedding (concatenated unit vectors: the mean of the two cosines)."""
    R = cs.relevant.tocsc().astype(np.float32)
    n = np.asarray(R.sum(axis=0)).ravel()
    co = np.asarray((R.T @ R).todense())
    np.fill_diagonal(co, 0.0)
    gains = co / np.sqrt(np.maximum(np.outer(n, n), 1.0))
    queries = np.flatnonzero(gains.max(axis=1) > 0)
    text_only = {i: Item(id=i, text=ctx.catalog[i].text) for i in cs.cold if i in ctx.catalog}
    vectors = {"text_embedding": _text_matrix(ctx, cs.cold),
               "two_tower_item_tower": model.item_vectors(cs.cold, text_only, {i: {"text": ctx.content[i]["text"]}
                                                                               for i in cs.cold if "text" in ctx.content.get(i, {})})}
    if member is not None and member.model is not None:
        content = member._content(text_only, list(text_only))
        vectors["two_tower_member_item_tower"] = member.model.item_vectors(cs.cold, text_only, content)
    unit = {name: V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-12) for name, V in vectors.items()}
    for name in ("two_tower_item_tower", "two_tower_member_item_tower"):
        if name in unit:  # both halves at equal weight: the mean of the two cosines
            vectors["text_embedding+" + name] = np.hstack([unit["text_embedding"], unit[name]])
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = (-np.sort(-gains[queries], axis=1)[:, :k] * discount).sum(axis=1)
    rows = []
    for name, V in vectors.items():
        V = V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-12)
        sims = V[queries] @ V.T
        sims[np.arange(len(queries)), queries] = -np.inf
        top = top_k_indices(sims, k)
        got = gains[queries[:, None], top]
        ndcg = float(np.mean((got * discount).sum(axis=1) / ideal))
        rows.append({"model": name, "ndcg": round(ndcg, 4), "mean_gain": round(float(got.mean()), 4),
                     "queries": int(len(queries)), "k": k})
    return rows


def _text_matrix(ctx: Context, ids: Sequence[str]) -> np.ndarray:
    dim = next((len(c["text"]) for c in ctx.content.values() if "text" in c), 0)
    out = np.zeros((len(ids), dim), dtype=np.float32)
    for n, i in enumerate(ids):
        vec = ctx.content.get(i, {}).get("text")
        if vec is not None:
            out[n] = vec
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)


def _content_profile(ctx: Context, cs: ColdSplit) -> np.ndarray:
    tr = cs.train
    pos = tr.value > 0
    uidx = {u: n for n, u in enumerate(cs.users)}
    users = np.array([uidx.get(tr.user_ids[u], -1) for u in tr.user[pos]])
    keep = users >= 0
    W = sp.csr_matrix((np.log1p(tr.value[pos][keep]), (users[keep], tr.item[pos][keep])),
                      shape=(len(cs.users), len(tr.item_ids)))
    profile = np.asarray(W @ _text_matrix(ctx, tr.item_ids))
    norms = np.linalg.norm(profile, axis=1, keepdims=True)
    profile = np.divide(profile, norms, out=np.zeros_like(profile), where=norms > 0)
    return profile @ _text_matrix(ctx, cs.cold).T


def _lightfm(ctx: Context, cs: ColdSplit, warm_catalog: dict[str, Item], k: int, seed: int) -> list[dict[str, Any]]:
    from overdrive.models.collaborative_filtering.lightfm_hybrid import (
        LightFMRecommender,
    )

    rows = []
    matrix = InteractionMatrix.from_interactions(cs.train)
    for label, words in (("lightfm_features", 0), ("lightfm_features_text", 64)):
        t0 = time.perf_counter()
        model = LightFMRecommender(text_words=words, seed=seed)
        model.fit(matrix, items=warm_catalog)
        model.add_items({}, items={i: ctx.catalog[i] for i in cs.cold if i in ctx.catalog})
        scores = np.vstack([model.score(u, cs.cold) for u in cs.users])
        rows.append(_row(label, _metrics(scores, cs, k), fit_seconds=round(time.perf_counter() - t0, 2),
                         features="tags, author, type" + (", text words" if words else "")))
    return rows


def _member(ctx: Context, cs: ColdSplit, warm_catalog: dict[str, Item], k: int, seed: int,
            progress: bool) -> tuple[dict[str, Any], Any]:
    """The ensemble member (matrix, metadata, hashed text) scoring cold items from their content."""
    from overdrive.models.two_tower.recommender import TwoTowerRecommender

    t0 = time.perf_counter()
    member = TwoTowerRecommender(seed=seed, show_progress=progress)
    member.fit(InteractionMatrix.from_interactions(cs.train), items=warm_catalog)
    member.add_items({}, items={i: ctx.catalog[i] for i in cs.cold if i in ctx.catalog})
    scores = np.vstack([member.score(u, cs.cold) for u in cs.users])
    return _row("two_tower_member", _metrics(scores, cs, k), fit_seconds=round(time.perf_counter() - t0, 2),
                features="matrix, tags, author, type, hashed text"), member


def _metadata_popularity(ctx: Context, cs: ColdSplit) -> np.ndarray:
    """Popularity carried over by metadata: each cold item scores the training interactions of
    its author's items plus a tenth of those of items sharing its tags (a cold item has none)."""
    tr = cs.train
    counts = np.bincount(tr.item[tr.value > 0], minlength=len(tr.item_ids))
    author: dict[str, float] = {}
    tag: dict[str, float] = {}
    for n, i in enumerate(tr.item_ids):
        item = ctx.catalog.get(i)
        if item is None:
            continue
        if item.author_id:
            author[item.author_id] = author.get(item.author_id, 0.0) + counts[n]
        for t in item.tags:
            tag[t] = tag.get(t, 0.0) + counts[n]
    score = np.zeros(len(cs.cold), dtype=np.float32)
    for n, i in enumerate(cs.cold):
        item = ctx.catalog.get(i)
        if item is not None:
            score[n] = author.get(item.author_id or "", 0.0) + 0.1 * sum(tag.get(t, 0.0) for t in item.tags)
    return np.tile(score, (len(cs.users), 1))


def _random_metrics(cs: ColdSplit, k: int, seed: int, rounds: int = 20) -> dict[str, Any]:
    """Expected metrics of a random order (the mean of `rounds` random permutations)."""
    rng = np.random.default_rng(seed)
    runs = [_metrics(rng.random((len(cs.users), len(cs.cold))), cs, k) for _ in range(rounds)]
    return {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}


# ---- serving-side figures ------------------------------------------------------------------------


def serving_figures(model: TwoTowerModel, ctx: Context, signals: Sequence[Signal], *, n_users: int = 300,
                    repeats: int = 3) -> dict[str, Any]:
    """User-tower latency (one user, up to max_history recent signals, P50/P99 over calls) and
    item-tower throughput (all catalog items, text embeddings given), on a fitted model."""
    by_user = newest_first(signals)
    users = list(by_user)[:n_users]
    now = max(s.timestamp for s in signals)
    for u in users[:20]:
        model.user_vector(u, by_user[u], now=now)  # warm-up (builds the runtime)
    times = []
    for _ in range(repeats):
        for u in users:
            t0 = time.perf_counter()
            model.user_vector(u, by_user[u], now=now)
            times.append(time.perf_counter() - t0)
    ids = list(ctx.catalog)
    model.item_vectors(ids[:100], ctx.catalog, ctx.content)
    t0 = time.perf_counter()
    model.item_vectors(ids, ctx.catalog, ctx.content)
    item_s = time.perf_counter() - t0
    ms = np.array(times) * 1e3
    return {"user_p50_ms": float(np.percentile(ms, 50)), "user_p99_ms": float(np.percentile(ms, 99)),
            "user_calls": len(times), "runtime": model.runtime_in_use,
            "items_per_s": len(ids) / item_s if item_s > 0 else float("inf"), "n_items": len(ids)}


def parse_signals(raw: Sequence[Mapping[str, Any] | Signal]) -> list[Signal]:
    return [s if isinstance(s, Signal) else signal_from_dict(s) for s in raw]
