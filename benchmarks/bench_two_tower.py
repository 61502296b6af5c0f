"""`python -m benchmarks.bench_two_tower`: what the two-tower model costs on this machine.

- training time on a synthetic world of MovieLens-100K size (~100,000 (user, item) rows, ~214,000
  signals; 384-d text vectors already computed — feature hashing stands in for MiniLM, same size);
- user-tower latency, one user per call, P50/P99: the full `user_vector` call (newest-first recent
  signals as the live store keeps them, up to 200, of which the model reads `max_history`) and the
  tower alone, for torch eager, TorchScript and ONNX Runtime — the fastest is the one
  `runtime.DEFAULT_RUNTIME` should name;
- item-tower throughput (items/s) over the catalog and over 10,000 items, text vectors given.

    python -m benchmarks.bench_two_tower            # table
    python -m benchmarks.bench_two_tower --json     # one JSON object
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import numpy as np


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4),
            "mean_ms": round(float(ms.mean()), 4)}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_two_tower", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=943)
    p.add_argument("--n-items", type=int, default=1682)
    p.add_argument("--interactions", type=int, default=100_000)
    p.add_argument("--calls", type=int, default=3000, help="user-vector calls per runtime")
    p.add_argument("--params", default="{}", help="TwoTowerModel arguments as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    from overdrive.content.text import HashingTextEncoder
    from overdrive.domain.codec import signal_from_dict
    from overdrive.domain.types import DEFAULT_SIGNAL_WEIGHTS
    from overdrive.models.collaborative_filtering.evaluate import synthetic_data
    from overdrive.models.collaborative_filtering.matrix import (
        aggregate_signals,
        items_by_id,
    )
    from overdrive.models.two_tower.model import TwoTowerModel
    from overdrive.models.two_tower.runtime import DEFAULT_RUNTIME, RUNTIMES

    data = synthetic_data(n_users=args.users, n_items=args.n_items, interactions=args.interactions, seed=args.seed)
    catalog = items_by_id(data.items)
    signals = [signal_from_dict(s) for s in data.signals]
    rows = len(aggregate_signals(signals, signal_weights=DEFAULT_SIGNAL_WEIGHTS, half_life_days=None))
    ids = list(catalog)
    text = HashingTextEncoder(dim=384).encode([catalog[i].text for i in ids]).vectors
    content = {i: {"text": text[n]} for n, i in enumerate(ids)}

    model = TwoTowerModel(**{"seed": args.seed, **json.loads(args.params)})
    t0, cpu0 = time.perf_counter(), time.process_time()
    report = model.fit(signals, catalog, content)
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    # CPU seconds too: on a shared machine the wall time says more about the neighbours than the fit.
    out: dict = {"training": {"seconds": round(train_s, 1), "cpu_seconds": round(train_cpu, 1),
                              "interactions": rows, "signals": len(signals),
                              "epochs": report["epochs"], "best_epoch": report["best_epoch"],
                              "refresh_epochs": report["refresh_epochs"],
                              "seconds_per_epoch": round(train_s / max(1, report["epochs"] + report["refresh_epochs"]), 2),
                              "validation": report["validation"]}}

    recent: dict[str, list] = {}
    for s in sorted(signals, key=lambda s: -s.timestamp):
        if len(recent.setdefault(s.user_id, [])) < 200:
            recent[s.user_id].append(s)
    users = sorted(recent, key=lambda u: -len(recent[u]))  # the longest histories first: worst case
    now = max(s.timestamp for s in signals)
    latency = {}
    reference = None
    for runtime in RUNTIMES:
        copy = TwoTowerModel.from_arrays(*model.to_arrays())
        copy.runtime = runtime
        for u in users[:50]:
            copy.user_vector(u, recent[u], now=now)
        calls = [users[n % min(len(users), 300)] for n in range(args.calls)]
        full = []
        for u in calls:
            t = time.perf_counter()
            copy.user_vector(u, recent[u], now=now)
            full.append(time.perf_counter() - t)
        # The tower alone, on prepared inputs of the longest history.
        user = users[0]
        vecs, meta = copy._sequence(recent[user], now, None)
        m = np.asarray(meta, dtype=np.float64)
        inputs = (np.array([copy._user_row.get(user, 0)]), np.asarray(vecs, np.float32)[None], m[:, 0].astype(np.int64)[None],
                  m[:, 1].astype(np.int64)[None], m[:, 2].astype(np.int64)[None], m[:, 3].astype(np.float32)[None],
                  m[:, 4].astype(np.float32)[None])
        tower = []
        for _ in range(args.calls):
            t = time.perf_counter()
            vec = copy._run_user_tower(inputs)
            tower.append(time.perf_counter() - t)
        if reference is None:
            reference = vec
        latency[runtime] = {"full_call": _percentiles(full), "tower_only": _percentiles(tower),
                            "history_length": len(vecs), "max_abs_diff_vs_eager": float(np.abs(vec - reference).max())}
    fastest = min(latency, key=lambda r: latency[r]["full_call"]["p99_ms"])
    out["user_tower"] = {"runtimes": latency, "fastest_p99": fastest, "default_runtime": DEFAULT_RUNTIME}

    throughput = {}
    for label, n in (("catalog", len(ids)), ("10k items", 10_000)):
        batch = [ids[j % len(ids)] for j in range(n)]
        fresh = [f"new-{j}" for j in range(n)]  # never seen in training: content and metadata only
        items = {f: catalog[b] for f, b in zip(fresh, batch)}
        cont = {f: content[b] for f, b in zip(fresh, batch)}
        model.item_vectors(fresh[:100], items, cont)
        t = time.perf_counter()
        model.item_vectors(fresh, items, cont)
        dt = time.perf_counter() - t
        throughput[label] = {"items": n, "seconds": round(dt, 3), "items_per_s": round(n / dt)}
    out["item_tower"] = throughput

    if args.json:
        print(json.dumps(out, sort_keys=True))
        return 0
    tr = out["training"]
    print(f"training: {tr['seconds']} s ({tr['cpu_seconds']} s of CPU over all threads) on {tr['interactions']} (user, item) rows / {tr['signals']} signals "
          f"({tr['epochs']} epochs, best {tr['best_epoch']}, +{tr['refresh_epochs']} refresh; "
          f"{tr['seconds_per_epoch']} s/epoch); validation {tr['validation']}")
    print(f"\nuser tower, one user per call ({args.calls} calls; history {latency[fastest]['history_length']} signals):")
    print(f"{'runtime':<13}{'call P50':>10}{'call P99':>10}{'tower P50':>11}{'tower P99':>11}{'max |diff|':>12}")
    for runtime, r in latency.items():
        print(f"{runtime:<13}{r['full_call']['p50_ms']:>10.3f}{r['full_call']['p99_ms']:>10.3f}"
              f"{r['tower_only']['p50_ms']:>11.3f}{r['tower_only']['p99_ms']:>11.3f}{r['max_abs_diff_vs_eager']:>12.1e}")
    print(f"fastest (P99 of the full call): {fastest}; the model's default runtime: {DEFAULT_RUNTIME}")
    print("\nitem tower (text vectors given, items unseen in training):")
    for label, r in throughput.items():
        print(f"  {label}: {r['items']} items in {r['seconds']} s = {r['items_per_s']} items/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
