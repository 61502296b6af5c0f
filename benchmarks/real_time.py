"""`python -m overdrive.analytics.real_time_signals --test`: a self-contained check and load test.

Runs the embedded signal path for real — SQLite signal log, in-process bus, priority-queue
processor, in-memory live state — on a synthetic world in a temporary folder. It checks
correctness first (every signal counted once, read-your-writes, backpressure), then prints:
- processor throughput (signals/s through queue + workers) against a baseline of applying the
  same signals straight to the FeatureStore, in the same run;
- durable publish latency for single signals (P50/P95/P99) and batch throughput;
- signal-to-visible latency: publish a signal, wait until ranking state reflects it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from overdrive.observability.performance import PerformanceMonitor
from overdrive.stream.processor import RealTimeSignalProcessor
from overdrive.api.schemas import ItemIn, SignalIn
from overdrive.domain.errors import Overloaded
from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.store.feature_config import FeatureConfig
from overdrive.store.memory_feature_store import MemoryFeatureStore
from overdrive.store.sqlite_catalog import SCHEMA as ITEMS_SCHEMA, SqliteItemCatalog
from overdrive.store.sqlite_db import SqliteDatabase
from overdrive.store.sqlite_signal_log import SCHEMA as SIGNALS_SCHEMA, SqliteSignalLog
from overdrive.stream.applier import SignalApplier
from overdrive.stream.in_process import InProcessSignalBus


def _pct(ms: list[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(np.asarray(ms), [50, 95, 99])
    return {"p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3), "p99_ms": round(float(p99), 3)}


def _check(ok: bool, what: str) -> None:
    print(f"  [{'ok' if ok else 'FAIL'}] {what}")
    if not ok:
        raise SystemExit(1)


async def _run(args: argparse.Namespace) -> dict:
    world = generate_world(WorldConfig(n_users=args.users, n_items=args.items, signals_per_user=args.signals_per_user, seed=args.seed))
    now = time.time()
    items = [ItemIn.model_validate(i).to_domain(now) for i in world.items]
    signals = [SignalIn.model_validate(s).to_domain(now) for s in world.signals]
    by_id = {i.id: i for i in items}
    results: dict = {"world": {"users": args.users, "items": len(items), "signals": len(signals)}}

    with tempfile.TemporaryDirectory() as tmp:
        db = SqliteDatabase(path=Path(tmp) / "selftest.sqlite3", schema=SIGNALS_SCHEMA + ITEMS_SCHEMA)
        catalog, signal_log = SqliteItemCatalog(db), SqliteSignalLog(db)
        await catalog.put(items)
        config = FeatureConfig()

        # Baseline: the same signals applied straight to a FeatureStore, no queue, no workers.
        baseline = MemoryFeatureStore(config=config)
        t0 = time.perf_counter()
        for start in range(0, len(signals), 1024):
            batch = signals[start : start + 1024]
            await baseline.apply(batch, {s.content_id: by_id[s.content_id] for s in batch if s.content_id in by_id}, now=now)
        results["baseline_apply_per_s"] = round(len(signals) / (time.perf_counter() - t0))

        # Processor throughput: submit everything, time until drained.
        monitor = PerformanceMonitor()
        features = MemoryFeatureStore(config=config)
        processor = RealTimeSignalProcessor(applier=SignalApplier(features=features, catalog=catalog, monitor=monitor),
                                            buffer_size=len(signals) + 10, workers=args.workers, monitor=monitor)
        await processor.start()
        t0 = time.perf_counter()
        with processor.reserve(len(signals)):
            processor.submit(signals)
        await processor.drain()
        results["processor_per_s"] = round(len(signals) / (time.perf_counter() - t0))
        await processor.stop()

        print("checks:")
        expected = Counter((s.user_id, s.signal_type) for s in signals)
        got: Counter = Counter()
        for user in {s.user_id for s in signals}:
            for stype, n in (await features.user_activity(user, now=now)).signal_counts.items():
                got[(user, stype)] = n
        _check(got == expected, f"every one of {len(signals):,} signals counted exactly once per user and type")
        tiny = RealTimeSignalProcessor(applier=SignalApplier(features=features, catalog=catalog, monitor=monitor),
                                       buffer_size=10, workers=1, monitor=monitor)
        try:
            with tiny.reserve(11):
                pass
            overloaded = False
        except Overloaded:
            overloaded = True
        _check(overloaded, "a full buffer refuses with Overloaded (HTTP 429) before anything is written")

        # The durable path: SQLite log + in-process bus + processor.
        live = MemoryFeatureStore(config=config)
        applier = SignalApplier(features=live, catalog=catalog, monitor=monitor)
        processor = RealTimeSignalProcessor(applier=applier, buffer_size=100_000, workers=args.workers, monitor=monitor)
        bus = InProcessSignalBus(signal_log=signal_log, processor=processor, applier=applier)
        await bus.start()
        user = signals[0].user_id
        probe = dataclasses.replace(signals[0], signal_type="like", signal_id="selftest-probe", timestamp=time.time())
        before = await live.user_interests(user, now=time.time())
        await bus.publish([probe])
        settled = await bus.settled(user, timeout_s=1.0)
        after = await live.user_interests(user, now=time.time())
        _check(settled and after != before, "read-your-writes: a like is in the user's profile when settled() returns")
        dup = await bus.publish([probe])
        _check(dup == [], "a repeated signal_id is acknowledged as a duplicate and not applied again")

        single, visible = [], []
        for i in range(args.requests):
            s = dataclasses.replace(signals[i % len(signals)], signal_id=f"selftest-{i}", timestamp=time.time())
            t0 = time.perf_counter()
            await bus.publish([s])
            t1 = time.perf_counter()
            await bus.settled(s.user_id, timeout_s=1.0)
            t2 = time.perf_counter()
            single.append((t1 - t0) * 1000)
            visible.append((t2 - t0) * 1000)
        results["publish_single"] = _pct(single)
        results["signal_to_visible"] = _pct(visible)

        batch = [dataclasses.replace(s, signal_id=f"selftest-batch-{i}") for i, s in enumerate(signals[: args.batch])]
        t0 = time.perf_counter()
        await bus.publish(batch)
        await processor.drain()
        results["publish_batch_per_s"] = round(len(batch) / (time.perf_counter() - t0))
        results["stages"] = monitor.snapshot()["signal_stages"]
        await bus.close()
        await signal_log.close()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m overdrive.analytics.real_time_signals", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", action="store_true", help="run the self-contained check and load test")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--signals-per-user", type=int, default=100)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000, help="single-signal publishes to time")
    parser.add_argument("--batch", type=int, default=10_000, help="signals in the timed batch publish")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.test:
        parser.print_help()
        sys.exit(2)
    r = asyncio.run(_run(args))
    if args.json:
        print(json.dumps(r))
        return
    w = r["world"]
    print(f"\nworld: {w['users']:,} users, {w['items']:,} items, {w['signals']:,} signals; {args.workers} workers, one process")
    print(f"baseline: FeatureStore.apply alone      {r['baseline_apply_per_s']:>10,} signals/s")
    print(f"processor: queue + workers + apply      {r['processor_per_s']:>10,} signals/s")
    print(f"durable batch publish (SQLite) + apply  {r['publish_batch_per_s']:>10,} signals/s")
    for name, key in [("durable single publish", "publish_single"), ("signal-to-visible", "signal_to_visible")]:
        p = r[key]
        print(f"{name:<39} P50 {p['p50_ms']:.3f} ms  P95 {p['p95_ms']:.3f} ms  P99 {p['p99_ms']:.3f} ms")
    print("stages (per batch):")
    for stage, s in r["stages"].items():
        lat = s["latency_ms"]
        print(f"  {stage:<12} {s['signals']:>10,} signals  P50 {lat['p50']:.3f} ms  P99 {lat['p99']:.3f} ms")


if __name__ == "__main__":
    main()
