"""Collaborative-filtering benchmark: ALS fit time, fold-in latency and candidate-scoring latency.

Targets (2 cores): ALS fit on 1M interactions within 30 s; folding one user in within 5 ms;
scoring 1,000 candidates for one user within 1 ms. Each figure is printed next to a baseline
measured in the same run on the same data: popularity (the cheapest model behind the same
`Recommender` API — the floor of id lookups and bookkeeping every method pays).

    python -m benchmarks.bench_collaborative                      # 1M (user, item) rows
    python -m benchmarks.bench_collaborative --interactions 200000 --json
    python -m benchmarks.bench_collaborative --with-ensemble      # also the full suite on a 100K world
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from overdrive.config import DEFAULT_SIGNAL_WEIGHTS
from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.models.collaborative_filtering import (
    AdvancedCollaborativeFiltering,
    InteractionMatrix,
    create,
)
from overdrive.models.collaborative_filtering.matrix import (
    aggregate_signals,
    items_by_id,
)
from benchmarks.timing import percentiles, timed


def world_and_interactions(n_users: int, n_items: int, interactions: int, seed: int):
    config = WorldConfig(n_users=n_users, n_items=n_items, signals_per_user=2.45 * interactions / n_users,
                         seed=seed, end=1_700_000_000.0)
    world = generate_world(config)
    inter = aggregate_signals(world.signals, signal_weights=DEFAULT_SIGNAL_WEIGHTS, items=[i["id"] for i in world.items])
    return world, inter


def bench_models(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    world, inter = world_and_interactions(args.users, args.items, args.interactions, args.seed)
    matrix = InteractionMatrix.from_interactions(inter)
    prep_s = time.perf_counter() - t0
    out: dict = {"data": {"users": matrix.shape[0], "items": matrix.shape[1], "interactions": matrix.nnz,
                          "signals": len(world.signals), "prepare_s": round(prep_s, 1), "cores": os.cpu_count()}}
    del world
    rng = np.random.default_rng(args.seed)

    fits = {}
    for label, method, params in (("popularity (baseline)", "popularity", {}),
                                  *((f"als n_factors={k}", "als", {"n_factors": k}) for k in args.factors)):
        model = create(method, **params)
        t0 = time.perf_counter()
        model.fit(matrix)
        fits[label] = (model, round(time.perf_counter() - t0, 3))
    out["fit_s"] = {label: s for label, (_, s) in fits.items()}

    users = rng.choice(matrix.shape[0], size=args.requests)
    item_ids = matrix.item_ids
    candidates = [[item_ids[j] for j in rng.choice(len(item_ids), size=1000, replace=False)] for _ in range(50)]
    scoring, folding = {}, {}
    for label, (model, _) in fits.items():
        model.score(matrix.user_ids[0], candidates[0])  # warm up
        scoring[label] = percentiles(timed(
            lambda i, m=model: m.score(matrix.user_ids[users[i]], candidates[i % len(candidates)]), args.requests), 4)
        rows = []
        for i in range(args.requests):
            row = matrix.user_row(matrix.user_ids[users[i]])
            for j in rng.choice(len(item_ids), size=5, replace=False):  # five new interactions each
                row[item_ids[j]] = row.get(item_ids[j], 0.0) + 2.0
            rows.append(row)
        folding[label] = percentiles(timed(
            lambda i, m=model, rows=rows: m.update_user(matrix.user_ids[users[i]], rows[i]), args.requests), 4)
    out["score_1000_candidates"] = scoring
    out["fold_in_one_user"] = folding
    als_model = fits[f"als n_factors={args.factors[0]}"][0]
    u = int(users[0])
    idx = np.sort(rng.choice(len(item_ids), size=1000, replace=False))
    out["als_numpy_score_1000_only"] = percentiles(timed(lambda i: als_model._score_items(u, idx), args.requests), 4)
    return out


def bench_ensemble(args: argparse.Namespace) -> dict:
    world, inter = world_and_interactions(943, 1682, 100_000, args.seed)
    matrix = InteractionMatrix.from_interactions(inter)
    model = AdvancedCollaborativeFiltering(show_progress=False)
    t0 = time.perf_counter()
    model.fit(matrix, items=items_by_id(world.items))
    fit_s = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    users = rng.choice(matrix.shape[0], size=200)
    candidates = [[matrix.item_ids[j] for j in rng.choice(matrix.shape[1], size=1000, replace=False)] for _ in range(20)]
    score = percentiles(timed(lambda i: model.score(matrix.user_ids[users[i]], candidates[i % 20]), 200), 4)
    recommend = percentiles(timed(lambda i: model.recommend(matrix.user_ids[users[i]], 10), 200), 4)
    signals = [{"user_id": matrix.user_ids[users[i]], "content_id": matrix.item_ids[(i * 7) % matrix.shape[1]],
                "signal_type": "like", "timestamp": matrix.now} for i in range(200)]
    fold = percentiles(timed(lambda i: (model.observe([signals[i]]), model.fold_in()), 200), 4)
    return {"data": {"users": matrix.shape[0], "items": matrix.shape[1], "interactions": matrix.nnz},
            "fit_s": round(fit_s, 1), "weights": {n: round(w, 3) for n, w in model.weights.items() if w > 0},
            "score_1000_candidates": score, "recommend_top10": recommend, "observe_and_fold_in_one_user": fold}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--interactions", type=int, default=1_000_000, help="~(user, item) rows")
    p.add_argument("--factors", type=int, nargs="+", default=[32, 128], help="ALS factor counts to time")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--with-ensemble", action="store_true", help="also fit and time the full suite on a 100K world")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    results = {"models": bench_models(args)}
    if args.with_ensemble:
        results["ensemble_100k"] = bench_ensemble(args)
    if args.json:
        print(json.dumps(results))
        return
    m = results["models"]
    d = m["data"]
    print(f"data: {d['users']} users × {d['items']} items, {d['interactions']} interactions from {d['signals']} "
          f"signals (prepared in {d['prepare_s']}s), {d['cores']} cores")
    print("\nfit time (target: ALS on 1M interactions ≤ 30 s)")
    for label, s in m["fit_s"].items():
        print(f"  {label:<24}{s:>9.2f} s")
    for title, key in (("score 1,000 candidates for one user (target ≤ 1 ms)", "score_1000_candidates"),
                       ("fold in one user: row + 5 new interactions (target ≤ 5 ms)", "fold_in_one_user")):
        print(f"\n{title}")
        for label, pct in m[key].items():
            print(f"  {label:<24} p50 {pct['p50_ms']:.3f} ms   p95 {pct['p95_ms']:.3f} ms   p99 {pct['p99_ms']:.3f} ms")
    pct = m["als_numpy_score_1000_only"]
    print(f"  (ALS numpy dot product alone: p50 {pct['p50_ms']:.3f} ms; the rest is id lookup)")
    if "ensemble_100k" in results:
        e = results["ensemble_100k"]
        print(f"\nfull suite on a MovieLens-100K-sized world ({e['data']['interactions']} interactions): "
              f"fit {e['fit_s']} s, weights {e['weights']}")
        for key in ("score_1000_candidates", "recommend_top10", "observe_and_fold_in_one_user"):
            pct = e[key]
            print(f"  {key:<32} p50 {pct['p50_ms']:.3f} ms   p95 {pct['p95_ms']:.3f} ms")


if __name__ == "__main__":
    main()
