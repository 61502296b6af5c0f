"""What serving an experiment adds to a ranking: the same requests with and without one, same run.

    python -m benchmarks.bench_experiments [--rounds 3] [--duration 8] [--rate 300]

One service (embedded, content features off; the ranking benchmark's world and trained model)
runs an A/B experiment over every user whose two arms blend exactly like `enhanced`, so both
feeds cost the same to rank. Requests naming `strategy: enhanced` skip the experiment; the same
requests without a strategy go through assignment, the arm's blend and the exposure log. Paced
runs of each alternate for `--rounds`; the P50 and P99 difference is what the experiment costs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import orjson

from benchmarks.load import post_request, run_load
from benchmarks.ranking import RANK_PATH, parser as ranking_parser, rank_bodies, start_service
from overdrive_client import Client


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_experiments", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--rate", type=float, default=300.0, help="paced requests per second")
    p.add_argument("--connections", type=int, default=32)
    ours = p.parse_args(argv)
    args = ranking_parser().parse_args(["--benchmark", "--no-content"])
    with tempfile.TemporaryDirectory(prefix="overdrive-bench-exp-") as folder:
        server, ids, users = start_service(Path(folder), args, prefix="")
        try:
            with Client(server.url, timeout=60.0) as client:
                enhanced = client.strategies()["strategies"]["enhanced"]
                created = client.create_experiment({
                    "name": "cost", "state": "running", "arms": [{"name": "a", "weights": enhanced},
                                                                 {"name": "b", "weights": enhanced}]})
            plain = rank_bodies(ids, users, args.candidates, args.limit)
            named = [orjson.dumps({**orjson.loads(b), "strategy": "enhanced"}) for b in plain]
            modes = {"no experiment": named, "experiment": plain}
            p50: dict[str, list[float]] = {m: [] for m in modes}
            p99: dict[str, list[float]] = {m: [] for m in modes}
            for round_ in range(ours.rounds):
                for mode, bodies in modes.items():
                    requests = [post_request("127.0.0.1", server.port, RANK_PATH, b) for b in bodies]
                    run = run_load("127.0.0.1", server.port, requests, connections=ours.connections,
                                   duration_s=ours.duration, warmup_s=2.0, rate=ours.rate)
                    if run.errors or not run.requests:
                        raise RuntimeError(f"{mode}: errors {run.errors}")
                    p50[mode].append(run.percentile(50))
                    p99[mode].append(run.percentile(99))
                    print(f"round {round_ + 1} {mode:<14} {run.rps:6.0f} req/s  P50 {run.percentile(50):.3f} ms  "
                          f"P99 {run.percentile(99):.3f} ms")
            with Client(server.url, timeout=60.0) as client:
                feeds = client.experiment_results(created["id"])["feeds"]
        finally:
            server.stop()
    base50, exp50 = statistics.median(p50["no experiment"]), statistics.median(p50["experiment"])
    print(f"\nmedian over {ours.rounds} rounds at {ours.rate:g} req/s: P50 {base50:.3f} ms without, {exp50:.3f} ms with "
          f"an experiment: +{exp50 - base50:.3f} ms (target < 0.2 ms); P99 {statistics.median(p99['no experiment']):.3f} vs "
          f"{statistics.median(p99['experiment']):.3f} ms; {feeds:,} exposures logged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
