"""What context costs: a ranking and a signal with and without it, timed in one process.

    python -m benchmarks.bench_context [--users 500] [--rounds 5] [--calls 400] [--signals-only]

One embedded service (content features off) holds a synthetic world whose signals carry context
(device, country, zoned timestamps) and a trained collaborative model. Ranking: the wired ranker
(the request's body validated with its `context` object and the context parsed from it and the
headers, as the API does; the context profiles read; the `context` component scored) against a
copy of it with no context reads and no `context` component (its body validated without the
object), the same users and 100 candidates each, in alternating rounds; the P50 difference is
what context adds. Signals: the API's parsing of a signal with `device_info` (a User-Agent),
`location` and a zoned timestamp against the same signal without them, and folding each into live
state (`MemoryFeatureStore.apply`, which then also learns habits and the context profiles).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import datetime
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

from overdrive.api.schemas import ItemIn, RankRequest, SignalIn
from overdrive.config import Settings
from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.domain.context import from_client_hints
from overdrive.domain.types import Candidate
from overdrive.evaluation.context import load
from overdrive.observability.rankings import RankingMonitor
from overdrive.store.feature_config import FeatureConfig
from overdrive.store.memory_feature_store import MemoryFeatureStore
from overdrive.wiring import build_services

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.0 Mobile/15E148 Safari/604.1")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_context", description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=500)
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=400, help="rankings per mode per round")
    p.add_argument("--signals", type=int, default=20_000, help="signals per mode (parsing and applying)")
    p.add_argument("--signals-only", action="store_true", help="only the signal part (no world, no ranking)")
    args = p.parse_args(argv)
    if not args.signals_only:
        print(f"ranking: {asyncio.run(_ranking(args))}")
    for line in _signals(args):
        print(line)
    return 0


async def _ranking(args: argparse.Namespace) -> str:
    world = generate_world(WorldConfig(n_users=args.users, n_items=args.items, seed=0, context=True, context_effect=1.0))
    with tempfile.TemporaryDirectory(prefix="overdrive-bench-context-") as tmp:
        settings = Settings.load({
            "OVERDRIVE_DATA_DIR": str(Path(tmp) / "data"), "MODEL_CACHE_DIR": str(Path(tmp) / "models"),
            "OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0", "OVERDRIVE_TRAIN_ON_START": "false",
            "OVERDRIVE_CONTENT_FEATURES": "false", "OVERDRIVE_CF_TUNE": "false"})
        services = build_services(settings)
        await services.start()
        try:
            await load(services, world, holdout_days=1.0)
            with_context = services.ranker
            without = copy.copy(with_context)  # the same stores and models; no context read or scored
            without._scorers = [s for s in with_context.scorers if s.name != "context"]  # noqa: SLF001
            without._contexts = None  # noqa: SLF001
            # Each way's score histograms sample one in four of its own rankings: with one monitor
            # for both, the systematic sample's phase fell on one way more often than the other.
            without._observers = [RankingMonitor() if isinstance(o, RankingMonitor) else o  # noqa: SLF001
                                  for o in with_context._observers]  # noqa: SLF001
            warm = copy.copy(without)
            warm._observers = []  # noqa: SLF001 - the warm-up rankings are not observed
            blend = {k: v for k, v in settings.ranking_weights.items() if k != "context"}
            ids = [d["id"] for d in world.items]
            requests = [(world.user_ids[n % len(world.user_ids)], [Candidate(i) for i in ids[(n * 37) % 1900:][:100]])
                        for n in range(args.calls)]
            # Each request's body as the API validates it, with or without the `context` object;
            # with it, the context is also parsed from the request's headers (its fallback).
            wires = [{"user_id": user, "candidate_items": [{"id": c.id} for c in candidates], "limit": 20}
                     for user, candidates in requests]
            body = {"device_info": {"user_agent": IPHONE}, "location": {"country": "PT"},
                    "local_time": "2026-12-06T08:30:00+00:00"}
            headers = {"user-agent": IPHONE, "sec-ch-ua-mobile": "?1"}
            took: dict[str, list[float]] = {"without": [], "with": []}
            for round_ in range(args.rounds):
                for n, (user, candidates) in enumerate(requests):
                    # A first ranking of a user warms what both ways share (the CF model's user
                    # scores, the catalog's items): it is not counted, so neither way pays for it.
                    await warm.rank(user_id=user, candidates=candidates, limit=20, weights=blend)
                    for mode in (("without", "with") if (n + round_) % 2 == 0 else ("with", "without")):
                        started = time.perf_counter()
                        if mode == "with":
                            parsed = RankRequest.model_validate({**wires[n], "context": body})
                            context = parsed.context.to_domain(from_client_hints(headers))
                            await with_context.rank(user_id=user, candidates=candidates, limit=20, context=context)
                        else:
                            RankRequest.model_validate(wires[n])
                            await without.rank(user_id=user, candidates=candidates, limit=20, weights=blend)
                        took[mode].append((time.perf_counter() - started) * 1000.0)
        finally:
            await services.close()
    a, b = statistics.median(took["without"]), statistics.median(took["with"])
    paired = statistics.median(w - wo for w, wo in zip(took["with"], took["without"], strict=True))
    return (f"P50 without context {a:.3f} ms, with {b:.3f} ms: {b - a:+.3f} ms; median paired difference "
            f"{paired:+.3f} ms ({args.rounds} rounds × {args.calls} requests of 100 candidates, each warmed, then ranked "
            f"both ways back to back in alternating order)")


def _signals(args: argparse.Namespace) -> list[str]:
    now = time.time()
    zoned = datetime.datetime.fromtimestamp(now, datetime.timezone(datetime.timedelta(hours=1))).isoformat()
    plain = [{"user_id": f"u{n % 1000}", "signal_type": "like", "content_id": f"i{n % 500}", "timestamp": now}
             for n in range(args.signals)]
    rich = [{**d, "timestamp": zoned, "metadata": {"device_info": {"user_agent": IPHONE}, "location": {"country": "PT"}}}
            for d in plain]
    world = generate_world(WorldConfig(n_users=10, n_items=500, seed=0))
    items = {f"i{n}": ItemIn.model_validate({**d, "id": f"i{n}"}).to_domain(now) for n, d in enumerate(world.items)}
    SignalIn.model_validate(rich[0]).to_domain(now)  # the user-agent rules load on first use
    modes = {"without": plain, "with": rich}
    spent = dict.fromkeys(modes, 0.0)
    for n, start in enumerate(range(0, len(plain), 1000)):  # alternating chunks, results dropped: same heap for both
        for name in (("without", "with") if n % 2 == 0 else ("with", "without")):
            began = time.perf_counter()
            for d in modes[name][start : start + 1000]:
                SignalIn.model_validate(d).to_domain(now)
            spent[name] += time.perf_counter() - began
    out = {f"parse {name}": spent[name] / len(rows) * 1e6 for name, rows in modes.items()}
    parsed = {name: [SignalIn.model_validate(d).to_domain(now) for d in rows] for name, rows in modes.items()}
    applied: dict[str, list[float]] = {name: [] for name in modes}
    for n in range(5):  # each way into a fresh store, five times in alternating order: the median
        for name in (("without", "with") if n % 2 == 0 else ("with", "without")):
            signals = parsed[name]
            store = MemoryFeatureStore(config=FeatureConfig())
            batches = [signals[s : s + 500] for s in range(0, len(signals), 500)]

            async def apply_all() -> float:
                gc.collect()  # what the ranking part left behind is not collected on either's time
                started = time.perf_counter()
                for batch in batches:  # noqa: B023 - awaited before the loop moves on
                    await store.apply(batch, items, now=now)  # noqa: B023
                return time.perf_counter() - started

            applied[name].append(asyncio.run(apply_all()) / len(signals) * 1e6)
    for name, took in applied.items():
        out[f"apply {name}"] = statistics.median(took)
    parse, apply = out["parse with"] - out["parse without"], out["apply with"] - out["apply without"]
    return [
        f"signal parsing: {out['parse without']:.1f} µs plain, {out['parse with']:.1f} µs with device_info, location "
        f"and a zoned timestamp: +{parse:.1f} µs",
        f"live-state apply (memory): {out['apply without']:.1f} µs plain, {out['apply with']:.1f} µs with context: "
        f"+{apply:.1f} µs",
        f"a signal with context costs +{parse + apply:.1f} µs",
    ]


if __name__ == "__main__":
    sys.exit(main())
