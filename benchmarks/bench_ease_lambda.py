"""EASE's holdout NDCG@10 at each L2 strength, on synthetic worlds of growing size.

    python -m benchmarks.bench_ease_lambda [--worlds 2000x2000x50,6000x3000x60]

For each world (users × items × signals per user) the collaborative suite's own holdout (as its
tuning uses) is carved from the interaction matrix and EASE is fitted at λ = 300 … 30,000; the
figures show where the best λ lies and how it moves with the data (EASE's tuning grid must reach it).
"""

from __future__ import annotations

import argparse
import sys
import time

from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.domain.types import DEFAULT_SIGNAL_WEIGHTS
from overdrive.models.collaborative_filtering.ease import EASERecommender
from overdrive.models.collaborative_filtering.matrix import InteractionMatrix
from overdrive.models.collaborative_filtering.tuning import holdout, validation_ndcg

STRENGTHS = (300.0, 1000.0, 3000.0, 10_000.0, 30_000.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_ease_lambda", description=__doc__.split("\n")[0])
    p.add_argument("--worlds", default="2000x2000x50,6000x3000x60", help="USERSxITEMSxSIGNALS_PER_USER, comma-separated")
    for spec in p.parse_args(argv).worlds.split(","):
        users, items, per_user = spec.split("x")
        world = generate_world(WorldConfig(n_users=int(users), n_items=int(items), signals_per_user=float(per_user), seed=0))
        matrix = InteractionMatrix.from_signals(world.signals, items=[i["id"] for i in world.items],
                                                signal_weights=DEFAULT_SIGNAL_WEIGHTS, half_life_days=14.0)
        split = holdout(matrix, seed=0)
        candidates = split.candidates()
        cells = []
        for l2 in STRENGTHS:
            started = time.perf_counter()
            model = EASERecommender(l2=l2)
            model.fit(split.train)
            ndcg = validation_ndcg(model.score_users, split, candidates=candidates)
            cells.append(f"λ={l2:,.0f} {ndcg:.4f} ({time.perf_counter() - started:.1f} s)")
        print(f"{matrix.shape[0]:,} users × {matrix.shape[1]:,} items, {matrix.nnz:,} interactions: " + "; ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
