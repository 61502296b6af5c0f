"""What folding live signals into the served collaborative ensemble costs, per member.

    python -m benchmarks.bench_fold_in [--signals 5000] [--users 943] [--items 1682] [--interactions 100000]

Fits the default ensemble (as the service does, members tuned) on a synthetic world of
MovieLens-100K size, then hands two copies of it `--signals` likes of random users in batches of
100, as the learners do with applied signals. Batched: the ensemble folds the touched users in
every `fold_in_every` interactions; printed, the CPU time per signal this costs in all and each
served member's share of it (`update_users`) — in the scaled mode before on-demand fold-ins, every
API replica paid this for every signal of the topic (docs/scaling.md#scale-simulation). On demand
(`fold_in_on_demand`): the signals are only merged into the users' rows, and each touched user is
folded in once scored (`refresh`, what a ranking calls first: in the background, with the users
scored meanwhile); printed, the CPU per signal of the merge, and per user of the fold-ins for
users scored one at a time (each alone) and all together (one batch).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Mapping

import numpy as np

from benchmarks.bench_collaborative import world_and_interactions
from overdrive.models.collaborative_filtering import (
    AdvancedCollaborativeFiltering,
    InteractionMatrix,
)
from overdrive.models.collaborative_filtering.matrix import items_by_id


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_fold_in", description=__doc__.split("\n\n")[0])
    p.add_argument("--signals", type=int, default=5000)
    p.add_argument("--users", type=int, default=943)
    p.add_argument("--items", type=int, default=1682)
    p.add_argument("--interactions", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    world, inter = world_and_interactions(args.users, args.items, args.interactions, args.seed)
    matrix = InteractionMatrix.from_interactions(inter)
    fitted = AdvancedCollaborativeFiltering(show_progress=False)
    fitted.fit(matrix, items=items_by_id(world.items))
    with tempfile.TemporaryDirectory() as tmp:
        fitted.save(tmp)
        model, on_demand = AdvancedCollaborativeFiltering.load(tmp), AdvancedCollaborativeFiltering.load(tmp)
    on_demand.fold_in_on_demand = True
    rng = np.random.default_rng(args.seed)
    users = rng.choice(matrix.shape[0], size=args.signals)
    items = rng.choice(matrix.shape[1], size=args.signals)
    signals = [{"user_id": matrix.user_ids[u], "content_id": matrix.item_ids[i], "signal_type": "like",
                "timestamp": matrix.now} for u, i in zip(users.tolist(), items.tolist(), strict=True)]
    spent = _time_members(model)
    total = _observe(model, signals)
    print(f"{len(signals)} likes of {len(set(users.tolist()))} users into the ensemble fitted on {matrix.nnz} "
          f"interactions (weights {({n: round(w, 3) for n, w in model.weights.items() if w > 0})}), folded in every "
          f"{model.fold_in_every}: {total:.2f} s of CPU = {total / len(signals) * 1e6:.0f} µs a signal, "
          f"{model.status()['folds']} folds")
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<12} {seconds:6.2f} s  {seconds / len(signals) * 1e6:7.0f} µs a signal")

    spent = _time_members(on_demand)
    merged = _observe(on_demand, signals)
    touched = list(dict.fromkeys(s["user_id"] for s in signals))
    half = len(touched) // 2
    print(f"on demand: merging {merged / len(signals) * 1e6:.0f} µs a signal")
    # Half the touched users scored one at a time, each fold-in done before the next is asked for
    # (a quiet replica); the other half asked for together (a busy one: they wait as one batch).
    for label, users, together in (("one at a time", touched[:half], False), ("together", touched[half:], True)):
        spent.update(dict.fromkeys(spent, 0.0))
        started = time.process_time()
        for user_id in users:
            on_demand.refresh(user_id)
            if not together:
                on_demand.wait_for_fold_ins()
        on_demand.wait_for_fold_ins()
        folded = time.process_time() - started
        print(f"  folding in users scored {label}: {folded / len(users) * 1e6:.0f} µs a user ({len(users)} users)")
        for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
            print(f"    {name:<12} {seconds:6.2f} s  {seconds / len(users) * 1e6:7.0f} µs a user")
    return 0


def _time_members(model: AdvancedCollaborativeFiltering) -> dict[str, float]:
    """Each member's CPU seconds in `update_users` from now on, by name (filled as they run)."""
    spent = dict.fromkeys(model.members, 0.0)
    for name, member in model.members.items():
        member.update_users = _timed(member.update_users, spent, name)  # type: ignore[method-assign]
    return spent


def _observe(model: AdvancedCollaborativeFiltering, signals: list[dict]) -> float:
    """CPU seconds the model takes to observe the signals, in batches of 100 as the learners hand them."""
    started = time.process_time()
    for k in range(0, len(signals), 100):
        model.observe(signals[k:k + 100])
    return time.process_time() - started


def _timed(call: Callable[[Mapping[str, Mapping[str, float]]], None], spent: dict[str, float],
           name: str) -> Callable[[Mapping[str, Mapping[str, float]]], None]:
    def timed(rows: Mapping[str, Mapping[str, float]]) -> None:
        started = time.process_time()
        try:
            call(rows)
        finally:
            spent[name] += time.process_time() - started
    return timed


if __name__ == "__main__":
    sys.exit(main())
