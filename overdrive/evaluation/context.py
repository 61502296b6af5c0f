"""Does ranking in context pay? The blend with the `context` component against the same blend without it.

    python -m overdrive.evaluation.context                     # no effects, then sigma 1, 1.5, 2
    python -m overdrive.evaluation.context --effects 2 --users 800 --json out.json

Synthetic worlds of one seed (`overdrive.data.synthetic`, `context` on): one without context
effects (devices, places and zoned times are there, but say nothing about taste), and one per
planted effect size (topic tastes that depend on device class and daypart, and per user on the
device: log-normal factors with sigma from `--effects`). For each, a
service is built in this process (embedded stores, in a temporary folder); the catalog and the
signals before the last `--holdout-days` go in through the API's own parsing (the signals' device,
country and zoned timestamps become their context) and the models are trained. Every later
positive interaction is held out and grouped by (user, device class, daypart): each group is one
ranking, in that context (the device, the user's UTC offset and the local hour of its first
interaction), of its items among `--negatives` catalog items the user never touched. Both blends
rank the same candidates with the same live state; NDCG@k is measured against the group's items.

Exit status 0 when the targets hold (at the largest effect: a gain of at least `--min-gain`;
without effects: no worse than `--max-loss`), 1 otherwise, 2 on bad options.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from overdrive.api.schemas import ItemIn, SignalIn
from overdrive.config import Settings
from overdrive.data.synthetic import World, WorldConfig, generate_world
from overdrive.domain.context import Context
from overdrive.domain.types import Candidate, Signal
from overdrive.domain.weighting import SignalWeighting
from overdrive.models.metrics import ranking_metrics
from overdrive.services.container import Services
from overdrive.wiring import build_services

PROG = "python -m overdrive.evaluation.context"
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Group:
    """Held-out positive items of one user in one context: one ranking."""

    user_id: str
    context: Context
    relevant: frozenset[str]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--effects", default="1.0,1.5,2.0",
                   help="sigmas of the planted context effects, comma-separated; the targets are judged at the "
                        "largest (default %(default)s)")
    p.add_argument("--users", type=int, default=800, help="users in each world (default %(default)s)")
    p.add_argument("--items", type=int, default=2000, help="items in each world (default %(default)s)")
    p.add_argument("--signals-per-user", type=float, default=60.0)
    p.add_argument("--days", type=float, default=30.0)
    p.add_argument("--holdout-days", type=float, default=6.0, help="the last days' interactions are held out (default %(default)s)")
    p.add_argument("--negatives", type=int, default=100, help="untouched catalog items ranked with each group's")
    p.add_argument("--groups", type=int, default=1000, help="at most this many rankings, sampled with --seed")
    p.add_argument("--context-weight", type=float, help="the context component's weight (default: the configured one)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-gain", type=float, default=0.10, help="target NDCG gain with effects (default %(default)s)")
    p.add_argument("--max-loss", type=float, default=0.01, help="tolerated NDCG loss without effects (default %(default)s)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    effects = sorted({float(e) for e in args.effects.split(",") if e.strip()})
    if not effects or effects[0] <= 0 or min(args.users, args.items, args.negatives, args.groups, args.k) < 1 \
            or not 0 < args.holdout_days < args.days:
        _parser().error("--effects must be > 0, counts and --k >= 1, and --holdout-days within (0, --days)")
    sys.stdout.reconfigure(line_buffering=True)
    figures = {}
    for effect in (0.0, *effects):
        world = generate_world(WorldConfig(n_users=args.users, n_items=args.items, n_days=args.days, seed=args.seed,
                                           signals_per_user=args.signals_per_user, context=True, context_effect=effect))
        f = figures[f"sigma {effect}"] = asyncio.run(evaluate(world, args))
        print(f"context effect sigma {effect}: {f['groups']} rankings of {f['users']} users in their own context, "
              f"{f['train_signals']:,} signals before the holdout")
        print(f"  NDCG@{args.k}  with context {f['with_context']:.4f}   without {f['without_context']:.4f}   "
              f"ratio {f['ratio']:.3f}   (context alone {f['context_alone']:.4f})")
    gain = figures[f"sigma {effects[-1]}"]["ratio"] - 1.0
    kept = figures["sigma 0.0"]["ratio"]
    ok = gain >= args.min_gain and kept >= 1.0 - args.max_loss
    print(f"\nplanted effects, sigma {effects[-1]}: {gain:+.1%} (target >= {args.min_gain:+.0%}); none: {kept:.3f}x "
          f"(target >= {1.0 - args.max_loss:.2f}x) -> {'targets met' if ok else 'targets MISSED'}")
    if args.json:
        args.json.write_text(json.dumps({"options": {k: str(v) for k, v in vars(args).items()}, **figures}, indent=2))
    return 0 if ok else 1


async def evaluate(world: World, args: argparse.Namespace) -> dict:
    """NDCG@k of the configured blend with and without `context`, and of `context` alone."""
    with tempfile.TemporaryDirectory(prefix="overdrive-context-") as tmp:
        settings = Settings.load({
            "OVERDRIVE_DATA_DIR": str(Path(tmp) / "data"), "MODEL_CACHE_DIR": str(Path(tmp) / "models"),
            "OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0", "OVERDRIVE_TRAIN_ON_START": "false",
            "OVERDRIVE_CONTENT_FEATURES": "false", "OVERDRIVE_CF_TUNE": "false"})
        services = build_services(settings)
        await services.start()
        try:
            return await _evaluate(services, settings, world, args)
        finally:
            await services.close()


async def _evaluate(services: Services, settings: Settings, world: World, args: argparse.Namespace) -> dict:
    train, test = await load(services, world, args.holdout_days)
    return await measure(services, settings, world, train, test, args)


async def load(services: Services, world: World, holdout_days: float) -> tuple[list[Signal], list[Signal]]:
    """The catalog and the signals before the holdout into the service, parsed as the API parses
    them (the signals' device, country and zoned timestamps become their context), applied, and
    the models trained; returns (the training signals, the held-out ones)."""
    now = time.time()
    await services.catalog.put([ItemIn.model_validate(d).to_domain(now) for d in world.items])
    signals = [SignalIn.model_validate(d).to_domain(now) for d in world.signals]
    cut = world.end - holdout_days * DAY_S
    train = [s for s in signals if s.timestamp < cut]
    for start in range(0, len(train), 5000):
        await services.signals.ingest(train[start : start + 5000])
    await _applied(services)
    services.collaborative.train(reason="context evaluation")
    while services.collaborative.status()["collaborative"]["last_training"]["state"] == "running":
        await asyncio.sleep(0.1)
    return train, [s for s in signals if s.timestamp >= cut]


async def measure(services: Services, settings: Settings, world: World, train: list[Signal], test: list[Signal],
                  args: argparse.Namespace) -> dict:
    """NDCG@k of the configured blend with and without `context`, and of `context` alone, each
    held-out group ranked in its own context among the same sampled negatives."""
    groups = _held_out(train, test, SignalWeighting(settings.signal_weights))
    rng = np.random.default_rng(args.seed)
    if len(groups) > args.groups:
        groups = [groups[i] for i in sorted(rng.choice(len(groups), size=args.groups, replace=False))]
    touched = defaultdict(set)
    for s in train:
        touched[s.user_id].add(s.content_id)
    catalog = np.array([d["id"] for d in world.items])
    with_context = dict(settings.ranking_weights)
    if args.context_weight is not None:
        with_context["context"] = args.context_weight
    blends = {"with_context": with_context, "without_context": {k: v for k, v in with_context.items() if k != "context"},
              "context_alone": {"context": 1.0}}
    served: dict[str, list[list[str]]] = {name: [] for name in blends}
    for group in groups:
        pool = [i for i in rng.choice(catalog, size=min(len(catalog), args.negatives * 2), replace=False).tolist()
                if i not in touched[group.user_id] and i not in group.relevant][: args.negatives]
        candidates = [Candidate(i) for i in sorted(group.relevant) + pool]
        for name, blend in blends.items():
            result = await services.ranker.rank(user_id=group.user_id, candidates=candidates, limit=args.k,
                                                weights=blend, strategy=name, exclude_seen=False, context=group.context)
            served[name].append([i.id for i in result.items])
    relevant = [g.relevant for g in groups]
    ndcg = {name: ranking_metrics(lists, relevant, k=args.k)["ndcg"] for name, lists in served.items()}
    return {**ndcg, "ratio": ndcg["with_context"] / ndcg["without_context"] if ndcg["without_context"] else float("nan"),
            "groups": len(groups), "users": len({g.user_id for g in groups}), "train_signals": len(train)}


async def _applied(services: Services, timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while services.performance.snapshot().get("gauges", {}).get("signals_unapplied"):
        if time.monotonic() > deadline:
            raise TimeoutError("signals not applied in time")
        await asyncio.sleep(0.1)


def _held_out(train: list[Signal], test: list[Signal], weighting: SignalWeighting) -> list[Group]:
    """The held-out items each user engaged with (positive total) and never touched in training,
    grouped by the context of their first held-out signal."""
    touched = {(s.user_id, s.content_id) for s in train}
    strength: dict[tuple[str, str], float] = defaultdict(float)
    first: dict[tuple[str, str], Signal] = {}
    for s in sorted(test, key=lambda s: s.timestamp):
        key = (s.user_id, s.content_id)
        if key not in touched:
            strength[key] += weighting.strength(s)
            first.setdefault(key, s)
    by_context: dict[tuple[str, str | None, str | None], list[tuple[str, Context]]] = defaultdict(list)
    for key, total in strength.items():
        if total <= 0:
            continue
        signal = first[key]
        seen = Context.from_dict(signal.metadata.get("context")) or Context()
        local = seen.local(signal.timestamp)
        context = Context(device_class=seen.device_class, country=seen.country, utc_offset_minutes=seen.utc_offset_minutes,
                          local_hour=local.hour if local is not None else None)
        by_context[(key[0], context.device_class, context.daypart(signal.timestamp))].append((key[1], context))
    return [Group(user_id=user, context=rows[0][1], relevant=frozenset(i for i, _ in rows))
            for (user, _, _), rows in sorted(by_context.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), str(kv[0][2])))]


if __name__ == "__main__":
    sys.exit(main())
