"""Foundation benchmark: rank latency and signal ingest throughput against the real server.

Starts `python -m overdrive.app` on the embedded default in a temporary data folder, loads a
synthetic world, then measures over HTTP (one keep-alive connection, sequential requests):
- rank latency for 100 catalog candidates (id only), limit 20;
- single-signal ingest (`POST /signals/process`) and batch ingest (`POST /signals/batch`);
- the baseline: `GET /health/live` on the same server and connection, the floor any request pays.
Measurements start once the background content pipeline has indexed the catalog.

    python -m benchmarks.bench_foundation [--users 2000 --items 10000 --requests 2000 --json]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from overdrive.evaluation.server_process import ServerProcess
from overdrive.data.synthetic import WorldConfig, generate_world
from benchmarks.timing import percentiles, timed
from overdrive_client import Client, Retry


def _wait_for_content(client: Client, n: int, since: float, timeout_s: float = 1800.0) -> float | None:
    """Items/s until the background feature pipeline has indexed the catalog (None if disabled)."""
    while time.perf_counter() - since < timeout_s:
        content = client.ready()["checks"]["models"]["content"]
        if isinstance(content, str):
            return None
        if content["indexed_items"] >= n and content["pipeline"]["backlog"] == 0:
            return round(n / (time.perf_counter() - since), 1)
        time.sleep(0.5)
    raise RuntimeError("content features did not finish")


def run(args: argparse.Namespace) -> dict:
    world = generate_world(WorldConfig(n_users=args.users, n_items=args.items, signals_per_user=args.signals_per_user, seed=args.seed))
    item_ids = [i["id"] for i in world.items]
    users = sorted({s["user_id"] for s in world.signals})
    rng = random.Random(args.seed)
    results: dict = {"world": {"users": len(users), "items": len(item_ids), "signals": len(world.signals)}}
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(data_dir=Path(tmp) / "data") as server:
        # Retries off: a refusal fails the benchmark instead of being waited out inside a timing.
        with Client(server.url, timeout=60.0, retry=Retry.never()) as client:
            t0 = time.perf_counter()
            for start in range(0, len(world.items), 5000):
                client.put_items(world.items[start : start + 5000])
            results["items_batch_per_s"] = round(len(world.items) / (time.perf_counter() - t0))
            results["content_indexed_per_s"] = _wait_for_content(client, len(world.items), t0)

            t0 = time.perf_counter()
            for start in range(0, len(world.signals), 5000):
                client.send_signals(world.signals[start : start + 5000])
            results["signals_batch_per_s"] = round(len(world.signals) / (time.perf_counter() - t0))

            live = timed(lambda i: client.live(), args.requests)
            results["baseline_health_live"] = percentiles(live)

            def one_signal(i: int) -> None:
                client.send_signal({
                    "user_id": rng.choice(users), "signal_type": rng.choice(["view", "like", "click", "skip"]),
                    "content_id": rng.choice(item_ids), "duration": 5.0, "signal_id": f"bench-single-{i}",
                })

            single = timed(one_signal, args.requests)
            results["signal_single"] = {**percentiles(single), "per_s": round(len(single) / (sum(single) / 1000.0))}

            def one_rank(i: int) -> None:
                client.rank(rng.choice(users), limit=20, candidates=rng.sample(item_ids, 100))

            timed(one_rank, 50)  # warm-up
            rank = timed(one_rank, args.requests)
            results["rank_100_candidates"] = {**percentiles(rank), "per_s": round(len(rank) / (sum(rank) / 1000.0))}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=10000)
    parser.add_argument("--signals-per-user", type=int, default=100)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    results = run(args)
    if args.json:
        print(json.dumps(results))
        return
    w = results["world"]
    print(f"world: {w['users']} users, {w['items']} items, {w['signals']} signals (embedded default, one connection)")
    print(f"items batch ingest        {results['items_batch_per_s']:>10,} items/s  (acknowledged, durable)")
    if results["content_indexed_per_s"] is not None:
        print(f"content features indexed  {results['content_indexed_per_s']:>10,} items/s  (background pipeline)")
    print(f"signals batch ingest      {results['signals_batch_per_s']:>10,} signals/s  (5,000 per request)")
    for name, key in [("baseline GET /health/live", "baseline_health_live"),
                      ("POST /signals/process", "signal_single"),
                      ("rank, 100 candidates", "rank_100_candidates")]:
        r = results[key]
        rate = f"{r['per_s']:>7,} req/s" if "per_s" in r else " " * 13
        print(f"{name:<25} {rate}  P50 {r['p50_ms']:6.2f} ms  P95 {r['p95_ms']:6.2f} ms  P99 {r['p99_ms']:6.2f} ms")


if __name__ == "__main__":
    main()
