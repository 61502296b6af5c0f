"""Interleaved A/B of the ranker over HTTP: this checkout against another commit, on one world.

This 2-core host's speed drifts by up to 2x within minutes, so a throughput change between two
separate benchmark runs means little. This builds the ranking benchmark's world once (catalog,
signals, trained collaborative model, indexed content), then serves it alternately with the code
of `--base` (a temporary `git worktree`; `python -m overdrive.app` run from there imports that
checkout) and with this checkout, and drives each in turn with the same closed-loop load: 64
connections, 100 catalog candidates, limit 20. The figure to read is the per-round ratio. For big
candidate sets, `--candidates 4000 --items 6000 --connections 1`: one request at a time, whose
P50 is then the latency of one ranking (printed too).

    python -m benchmarks.rank_ab --base 53b1383 [--rounds 3 --duration 8 --no-content --redis URL]

The base commit must read the data folder this checkout writes (true while the formats agree).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from benchmarks.load import LoadResult, post_request, run_load
from overdrive.evaluation.server_process import ServerProcess
from benchmarks.ranking import (
    RANK_PATH,
    delete_prefix,
    parser,
    rank_bodies,
    service_env,
    start_service,
)

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="git commit or ref to compare against")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=4.0, help="seconds of load before measuring, per run")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--candidates", type=int, default=100, help="catalog candidates per request")
    p.add_argument("--items", type=int, default=2000, help="catalog size of the world")
    p.add_argument("--no-content", action="store_true")
    p.add_argument("--redis", metavar="URL", help="serve the world from this Redis (scaled mode)")
    args = p.parse_args()
    # the ranking benchmark's own world (its default sizes), as `start_service` reads it
    world = parser().parse_args(["--benchmark", "--items", str(args.items), *(["--no-content"] if args.no_content else []),
                                 *(["--redis", args.redis] if args.redis else [])])
    prefix = f"overdrive-ab-{uuid.uuid4().hex[:8]}:"
    with tempfile.TemporaryDirectory(prefix="overdrive-ab-") as tmp_name:
        tmp = Path(tmp_name)
        base = tmp / "base"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(base), args.base], check=True)
        try:
            server, ids, users = start_service(tmp, world, prefix)
            server.stop()  # the world (models, index) stays in `tmp` for both versions
            bodies = rank_bodies(ids, users, args.candidates, 20)
            env = service_env(tmp, world, prefix)
            ratios = []
            for n in range(1, args.rounds + 1):
                runs = {name: _run(tmp, env, cwd, bodies, args) for name, cwd in (("base", base), ("this", REPO))}
                ratios.append(runs["this"].rps / runs["base"].rps)
                print(f"round {n}: " + ", ".join(f"{name} {r.rps:.0f} req/s (P50 {r.percentile(50):.2f} ms)"
                                                 for name, r in runs.items()) + f", ratio {ratios[-1]:.2f}")
            print(f"this / base throughput: median {statistics.median(ratios):.2f} over {len(ratios)} rounds "
                  f"({args.candidates} candidates, {args.connections} connections)")
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=False)
            if args.redis:
                delete_prefix(args.redis, prefix)
    return 0


def _run(tmp: Path, env: dict[str, str], cwd: Path, bodies: list[bytes], args: argparse.Namespace) -> LoadResult:
    server = ServerProcess(data_dir=tmp / "data", env=env, log_path=tmp / "server.log", cwd=cwd).start(timeout_s=300)
    try:
        requests = [post_request("127.0.0.1", server.port, RANK_PATH, b) for b in bodies]
        result = run_load("127.0.0.1", server.port, requests, connections=args.connections,
                          duration_s=args.duration, warmup_s=args.warmup)
    finally:
        server.stop()
    if result.errors or not result.requests:
        raise RuntimeError(f"{cwd}: errors {result.errors}, {result.requests} answers")
    return result


if __name__ == "__main__":
    sys.exit(main())
