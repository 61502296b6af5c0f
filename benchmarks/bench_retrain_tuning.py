"""What remembering tuned hyperparameters saves a retrain, in one process.

    python -m benchmarks.bench_retrain_tuning [--users 2000] [--items 2000] [--signals-per-user 50] [--methods ...]

Fits the collaborative ensemble (every member searching its grid on a holdout) on a synthetic
world with an empty tuning memo, then fits a fresh ensemble on the same world with the memo the
first fit left, as a retrain on data of the same size does; then a third on a world with other
signals of much the same size, and that world searched afresh (the quality to compare with). Printed for each: seconds, each member's chosen parameters, and the
validation NDCG@10 of each member and the ensemble (the fits that reuse should match the search's quality).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.models.collaborative_filtering import AdvancedCollaborativeFiltering
from overdrive.models.collaborative_filtering.registry import DEFAULT_METHODS
from overdrive.models.collaborative_filtering.tuning_memo import TuningMemo


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_retrain_tuning", description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--signals-per-user", type=float, default=50.0)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated ensemble members")
    args = p.parse_args(argv)
    methods = tuple(args.methods.split(","))
    with tempfile.TemporaryDirectory(prefix="overdrive-bench-tuning-") as tmp:
        kept, empty = TuningMemo(Path(tmp) / "tuning.json"), TuningMemo(Path(tmp) / "empty.json")
        for label, seed, memo in (("searched (empty memo)", 0, kept), ("retrain, same data", 0, kept),
                                  ("retrain, other signals", 1, kept), ("other signals, searched", 1, empty)):
            world = generate_world(WorldConfig(n_users=args.users, n_items=args.items,
                                               signals_per_user=args.signals_per_user, seed=seed))
            model = AdvancedCollaborativeFiltering(methods=methods, tune=True, tuning_memo=memo)
            started = time.perf_counter()
            model.fit_signals(world.signals, items=world.items)
            took = time.perf_counter() - started
            status = model.status()
            print(f"{label}: {took:.1f} s on {status['n_interactions']:,} interactions; validation NDCG@10 "
                  f"{status['validation_ndcg@10']}; weights {status['weights']}")
            for member, tuning in status["tuning"].items():
                print(f"    {member}: {tuning.get('params')}{' (reused)' if 'reused_from' in tuning else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
