"""What authentication costs a ranking: the same service and world served open (loopback, no
credential configured), then with API keys and JWTs configured, driven with each credential.

    python -m benchmarks.bench_auth [--duration 10] [--connections 32] [--rounds 2]

The world and trained model are built once (`benchmarks/ranking.py`'s setup, content features
off); each mode then restarts the service on the same data and model folders and gets a
saturation run (closed loop) and a run paced at half the open service's saturation rate. Modes
alternate for `--rounds` rounds, so host drift shows as the spread between rounds of one mode.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jwt

from benchmarks.load import LoadResult, post_request, run_load
from benchmarks.ranking import RANK_PATH, parser as ranking_parser, rank_bodies, service_env, start_service
from overdrive.evaluation.server_process import ServerProcess
from overdrive.security.keys import KeyEntry, append_key, key_digest, new_key

SECRET = "benchmark-secret-" + "x" * 32


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_auth", description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--rounds", type=int, default=2)
    ours = p.parse_args(argv)
    args = ranking_parser().parse_args(["--benchmark", "--no-content", "--duration", str(ours.duration),
                                        "--connections", str(ours.connections)])
    with tempfile.TemporaryDirectory(prefix="overdrive-bench-auth-") as folder:
        tmp = Path(folder)
        server, ids, users = start_service(tmp, args, prefix="")
        server.stop()
        bodies = rank_bodies(ids, users, args.candidates, args.limit)
        key = new_key()
        append_key(tmp / "keys.json", KeyEntry(id="bench", sha256=key_digest(key), scopes=frozenset({"rank"})))
        token = jwt.encode({"sub": "bench", "scope": "rank", "exp": time.time() + 86_400}, SECRET, algorithm="HS256")
        secured = {"OVERDRIVE_API_KEYS_FILE": str(tmp / "keys.json"), "OVERDRIVE_JWT_SECRET": SECRET}
        modes = {"open": ({}, {}), "api key": (secured, {"X-API-Key": key}),
                 "jwt": (secured, {"Authorization": f"Bearer {token}"})}
        results: dict[str, list[tuple[LoadResult, LoadResult]]] = {m: [] for m in modes}
        pace = None
        for round_ in range(ours.rounds):
            for mode, (env, headers) in modes.items():
                with ServerProcess(data_dir=tmp / "data", env={**service_env(tmp, args, ""), **env},
                                   log_path=tmp / "server.log") as live:
                    requests = [post_request("127.0.0.1", live.port, RANK_PATH, b, headers) for b in bodies]
                    saturation = run_load("127.0.0.1", live.port, requests, connections=args.connections,
                                          duration_s=args.duration, warmup_s=args.warmup)
                    if saturation.errors or not saturation.requests:
                        raise RuntimeError(f"{mode}: errors {saturation.errors}")
                    pace = pace or 0.5 * saturation.rps
                    paced = run_load("127.0.0.1", live.port, requests, connections=args.connections,
                                     duration_s=args.duration, warmup_s=args.warmup, rate=pace)
                results[mode].append((saturation, paced))
                print(f"round {round_ + 1} {mode:<8} saturation {saturation.rps:7.0f} req/s   "
                      f"paced {pace:.0f} req/s: P50 {paced.percentile(50):.2f} ms P99 {paced.percentile(99):.2f} ms")
    print(f"\n{'mode':<9}{'req/s (median)':>16}{'vs open':>9}{'P50 ms':>9}{'P99 ms':>9}   (paced at {pace:.0f} req/s)")
    open_rps = statistics.median([s.rps for s, _ in results["open"]])
    for mode, runs in results.items():
        rps = statistics.median([s.rps for s, _ in runs])
        print(f"{mode:<9}{rps:>16,.0f}{rps / open_rps:>9.3f}{statistics.median([p.percentile(50) for _, p in runs]):>9.2f}"
              f"{statistics.median([p.percentile(99) for _, p in runs]):>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
