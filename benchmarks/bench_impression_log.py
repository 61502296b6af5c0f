"""Memory the learned blend's impression log holds per impression, after the rankings are gone.

    python -m benchmarks.bench_impression_log [--rankings 20000] [--items 10]

Feeds `BlendLearner.observe` rankings of `--items` items with a score for every component (52
users, 200 items, as the soak's world), drops the rankings, and prints what tracemalloc still
counts per logged impression — the component scores included, since they are made while tracing.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import tracemalloc
from pathlib import Path

from overdrive.domain.types import COMPONENTS, RankedItem, RankResult
from overdrive.domain.weighting import SignalWeighting
from overdrive.services.blend_learner import BlendLearner


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_impression_log", description=__doc__.split("\n")[0])
    p.add_argument("--rankings", type=int, default=20_000)
    p.add_argument("--items", type=int, default=10)
    args = p.parse_args(argv)
    users = [sys.intern(f"u{n}") for n in range(52)]
    items = [sys.intern(f"i{n}") for n in range(200)]
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        learner = BlendLearner(model_dir=Path(tmp), weighting=SignalWeighting({}), capacity=args.rankings * args.items)
        gc.collect()
        tracemalloc.start()
        for n in range(args.rankings):
            learner.observe(RankResult(users[n % len(users)], [
                RankedItem(item, 0.5, k + 1, {}, {c: rng.random() for c in COMPONENTS})
                for k, item in enumerate(rng.sample(items, args.items))], "enhanced", "r", 1.0, 100))
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    impressions = learner.status()["impressions_logged"]
    print(f"{impressions:,} impressions ({args.rankings:,} rankings × {args.items}, {len(COMPONENTS)} components): "
          f"{held / impressions:.0f} B an impression, {held / 2**20:.1f} MiB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
