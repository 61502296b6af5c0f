"""What a ranking costs as its candidate set grows: 100, 1,000 and 4,000 candidates, in one process.

    python -m benchmarks.bench_big_candidates [--users 1000] [--items 6000] [--requests 200] [--no-content]

One embedded service holds a synthetic world (catalog, signal history, a trained collaborative
model and, unless `--no-content`, every item's content embedding, waited for). Each size ranks
`--requests` users over that many catalog ids (a random sample, in random order), in rounds that alternate the sizes; the first
round warms the caches (catalog, item features, each user's collaborative scores, as a user's
next page finds them) and is not counted. Two figures per size: the wired
ranker alone (`rank`), and the whole API without the socket (`request`: `POST
/rank/for-you/enhanced` through the service's ASGI app in this process, with httpx's ASGI
transport: middleware, the body parsed and validated, the candidates built, the ranking, the
answer serialised). The 100-candidate figures are the baseline the larger sets are read against
(per candidate). The collector is set up as the API's start-up sets it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

from overdrive.api.app_factory import create_app
from overdrive.config import Settings
from overdrive.data.synthetic import World, WorldConfig, generate_world
from overdrive.domain.types import Candidate
from overdrive.evaluation.context import load
from overdrive.services.container import Services
from overdrive.wiring import build_services

SIZES = (100, 1000, 4000)
RANK_PATH = "/rank/for-you/enhanced"
JSON = {"content-type": "application/json"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_big_candidates", description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--items", type=int, default=6000)
    p.add_argument("--requests", type=int, default=200, help="rankings per size (distinct users, up to --users)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="candidate set sizes, comma-separated")
    p.add_argument("--no-content", action="store_true", help="without content features (no text model)")
    args = p.parse_args(argv)
    args.sizes = tuple(int(n) for n in args.sizes.split(","))
    if max(args.sizes) > args.items:
        p.error(f"--items must be at least {max(args.sizes)}")
    for line in asyncio.run(_run(args)):
        print(line)
    return 0


async def _run(args: argparse.Namespace) -> list[str]:
    world = generate_world(WorldConfig(n_users=args.users, n_items=args.items, seed=0))
    with tempfile.TemporaryDirectory(prefix="overdrive-bench-big-") as tmp:
        settings = Settings.load({
            "OVERDRIVE_DATA_DIR": str(Path(tmp) / "data"), "MODEL_CACHE_DIR": str(Path(tmp) / "models"),
            "OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0", "OVERDRIVE_TRAIN_ON_START": "false",
            "OVERDRIVE_CONTENT_FEATURES": str(not args.no_content).lower(), "OVERDRIVE_CF_TUNE": "false"})
        services = build_services(settings)
        await services.start()
        try:
            began = time.perf_counter()
            await load(services, world, holdout_days=1.0)
            if not args.no_content:
                await _indexed(services, len(world.items))
            ready = time.perf_counter() - began
            gc.collect()  # as the API's start-up does: the loaded state is kept out of the collector's scans
            gc.freeze()
            gc.set_threshold(20_000, 20, 20)
            took = await _rankings(services, world, args)
        finally:
            await services.close()
    lines = [(f"world: {len(world.items)} items, {len(world.user_ids)} users, {len(world.signals)} signals; "
              f"content {'off' if args.no_content else 'on'}; ready in {ready:.0f} s"),
             (f"{'candidates':>10}  {'rank P50':>9}  {'rank P95':>9}  {'request P50':>11}  {'request P95':>11}  "
              f"{'µs/candidate':>12}")]
    for size in args.sizes:
        rank, request = took[("rank", size)], took[("request", size)]
        lines.append(f"{size:>10,}  {_p(rank, 50):7.2f}ms  {_p(rank, 95):7.2f}ms  {_p(request, 50):9.2f}ms  "
                     f"{_p(request, 95):9.2f}ms  {_p(request, 50) * 1000 / size:12.2f}")
    lines.append(f"({args.rounds} rounds × {min(args.requests, len(world.user_ids))} users per size, sizes alternating)")
    return lines


async def _rankings(services: Services, world: World, args: argparse.Namespace) -> dict[tuple[str, int], list[float]]:
    ranker, ids = services.ranker, [d["id"] for d in world.items]
    users = world.user_ids[: args.requests]
    sizes = args.sizes
    windows = {size: [_sample(ids, n, size) for n in range(len(users))] for size in sizes}
    bodies = {size: [orjson.dumps({"user_id": users[(n + 1) % len(users)], "candidate_items": [{"id": i} for i in w],
                                   "limit": 20}) for n, w in enumerate(windows[size])] for size in sizes}
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(services)), base_url="http://overdrive")
    took: dict[tuple[str, int], list[float]] = {(how, size): [] for how in ("rank", "request") for size in sizes}
    for round_ in range(args.rounds):
        for n, user in enumerate(users):
            for size in sizes if (n + round_) % 2 == 0 else sizes[::-1]:
                candidates = [Candidate(i) for i in windows[size][n]]
                started = time.perf_counter()
                await ranker.rank(user_id=user, candidates=candidates, limit=20)
                ranked = time.perf_counter()
                answer = await client.post(RANK_PATH, content=bodies[size][n], headers=JSON)
                ended = time.perf_counter()
                if answer.status_code != 200:
                    raise RuntimeError(f"{RANK_PATH} answered {answer.status_code}: {answer.text[:200]}")
                if round_ > 0:  # the first round warms the catalog and feature caches
                    took[("rank", size)].append((ranked - started) * 1000.0)
                    took[("request", size)].append((ended - ranked) * 1000.0)
    await client.aclose()
    return took


def _sample(ids: list[str], n: int, size: int) -> list[str]:
    """Request n's candidates: `size` catalog ids in random order, as a client's retrieval hands
    them over (a run of neighbouring ids would read the catalog's and models' memory in order)."""
    return [ids[j] for j in np.random.default_rng(n).choice(len(ids), size=size, replace=False)]


async def _indexed(services: Services, n_items: int, timeout_s: float = 1200.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (health := services.content.health())["indexed_items"] < n_items or health["pipeline"]["backlog"]:
        if time.monotonic() > deadline:
            raise TimeoutError("content not indexed in time")
        await asyncio.sleep(0.5)


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


if __name__ == "__main__":
    sys.exit(main())
