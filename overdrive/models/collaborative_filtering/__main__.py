"""`python -m overdrive.models.collaborative_filtering --evaluate`: every method and the ensemble,
one protocol, figures comparable with published tables.

    python -m overdrive.models.collaborative_filtering --evaluate                  # synthetic world
    python -m overdrive.models.collaborative_filtering --evaluate --data ./ml-100k --format movielens
    python -m overdrive.models.collaborative_filtering --evaluate --data events.csv --items items.csv \\
        --format csv --protocol leave-last-out --json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence

from overdrive.models.collaborative_filtering.evaluate import (
    PROTOCOLS,
    format_table,
    load_data,
    run_protocol,
)
from overdrive.models.collaborative_filtering.registry import DEFAULT_METHODS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m overdrive.models.collaborative_filtering", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--evaluate", action="store_true", help="run the offline evaluation (the only action)")
    p.add_argument("--data", help="MovieLens folder, or the interactions file for csv/jsonl (default: synthetic world)")
    p.add_argument("--format", choices=("movielens", "csv", "jsonl"), default="movielens", help="format of --data")
    p.add_argument("--items", dest="items_path", help="items file for --format csv/jsonl")
    p.add_argument("--protocol", choices=(*PROTOCOLS, "all"), default="stratified",
                   help="stratified (default; per-user 75/25 random split), leave-last-out, or all")
    p.add_argument("--json", action="store_true", help="print one JSON line per model instead of a table")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated methods (default: all)")
    p.add_argument("--k", type=int, default=10, help="cut-off for NDCG/precision/recall (default 10)")
    p.add_argument("--ratio", type=float, default=0.75, help="training share per user for stratified (default 0.75)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--relevance", choices=("auto", "positive", "all"), default="auto",
                   help="which held-out rows are relevant: positive net feedback, or all (auto: all for MovieLens, "
                        "as in Recommenders' tables; positive otherwise)")
    p.add_argument("--half-life-days", type=float, default=None,
                   help="signal decay half-life; 0 disables (default: settings' interest half-life, none for MovieLens)")
    p.add_argument("--no-tune", action="store_true", help="skip per-method hyperparameter tuning on validation")
    p.add_argument("--users", type=int, default=943, help="synthetic world: users (default 943, as MovieLens-100K)")
    p.add_argument("--n-items", type=int, default=1682, help="synthetic world: items (default 1682)")
    p.add_argument("--interactions", type=int, default=100_000, help="synthetic world: ~(user, item) pairs")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.evaluate:
        _parser().print_help()
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from overdrive.config import Settings
    from overdrive.models.collaborative_filtering.advanced import (
        AdvancedCollaborativeFiltering,
    )
    from overdrive.models.collaborative_filtering.matrix import aggregate_signals

    settings = Settings.load()
    movielens = args.data is not None and args.format == "movielens"
    relevance = args.relevance if args.relevance != "auto" else ("all" if movielens else "positive")
    half_life = args.half_life_days
    if half_life is None:
        half_life = 0.0 if movielens else settings.interest_half_life_days
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    started = time.perf_counter()
    data = load_data(data=args.data, fmt=args.format, items_path=args.items_path, n_users=args.users,
                     n_items=args.n_items, interactions=args.interactions, seed=args.seed)
    inter = aggregate_signals(data.signals, signal_weights=settings.signal_weights, half_life_days=half_life or None,
                              items=[i["id"] for i in data.items])
    catalog = {i["id"]: i for i in data.items}
    header = (f"dataset: {data.name}: {len(inter.user_ids)} users, {len(inter.item_ids)} items, "
              f"{len(inter)} (user, item) rows from {len(data.signals)} signals "
              f"(loaded in {time.perf_counter() - started:.1f}s); signal weights from settings, "
              f"half-life {half_life or 'none'} days")
    protocols = list(PROTOCOLS) if args.protocol == "all" else [args.protocol]
    if not args.json:
        print(header)
    for protocol in protocols:
        rows = run_protocol(
            inter, protocol,
            build_model=lambda: AdvancedCollaborativeFiltering(
                methods=methods, signal_weights=settings.signal_weights, half_life_days=half_life or None,
                tune=not args.no_tune, seed=args.seed, show_progress=not args.no_progress, fit_unweighted=True,
            ),
            items=catalog, dataset=data.name, ratio=args.ratio, seed=args.seed, k=args.k, relevance=relevance,
            show_progress=not args.no_progress,
        )
        if args.json:
            for row in rows:
                print(json.dumps(row, sort_keys=True))
        else:
            print(f"\nprotocol {protocol}: {rows[0]['protocol_description']}; {rows[0]['n_users']} test users")
            print(format_table(rows, k=args.k))
            ens = next(r for r in rows if r["model"] == "ensemble")
            print(f"ensemble weights (fitted on validation NDCG@{args.k}): {ens['weights']}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
