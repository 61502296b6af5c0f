"""The load generator's own figures, against the bare reference endpoint (benchmarks/ranking.py).

The integration test (tests/integration/test_ranking_benchmark.py) asserts only what does not
depend on the machine: answers counted, a paced run never over its rate. This prints the speed:
- closed loop (the baseline): requests per second the generator and the bare endpoint reach
  together on `--connections` connections — the most any paced run here could be answered at;
- paced at each `--rates` (and at half the closed loop's rate): requests answered within the
  window against requests offered (rate x duration), and latency P50/P99 from the scheduled send.

    python -m benchmarks.bench_load [--connections 4 --duration 2 --rates 50 500 --json]

Run from the repository root (the endpoint runs as `python -m benchmarks.ranking --serve`).
"""

from __future__ import annotations

import argparse
import json
import sys

import orjson

from benchmarks.load import LoadResult, post_request, run_load
from benchmarks.ranking import reference_server
from overdrive.evaluation.server_process import free_port

BODY = orjson.dumps({"user_id": "u", "candidate_items": [{"id": f"i{n}"} for n in range(100)], "limit": 20})


def _row(result: LoadResult, offered: float | None, duration_s: float) -> dict:
    row = {"requests": result.requests, "requests_per_s": round(result.rps, 1), "errors": dict(result.errors),
           "p50_ms": round(result.percentile(50), 3), "p99_ms": round(result.percentile(99), 3)}
    if offered is not None:
        row |= {"offered_per_s": offered, "answered_of_offered": round(result.requests / (offered * duration_s), 3)}
    return row


def run(args: argparse.Namespace) -> dict:
    port = free_port()
    with reference_server("bare", port):
        requests = [post_request("127.0.0.1", port, "/", BODY)]
        load = {"connections": args.connections, "duration_s": args.duration, "warmup_s": args.warmup}
        closed = run_load("127.0.0.1", port, requests, **load)
        results = {"connections": args.connections, "duration_s": args.duration,
                   "closed": _row(closed, None, args.duration), "paced": {}}
        rates = [*args.rates, round(closed.rps / 2, 1)]
        for rate in rates:
            paced = run_load("127.0.0.1", port, requests, rate=rate, **load)
            results["paced"][str(rate)] = _row(paced, rate, args.duration)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before measuring, per run")
    parser.add_argument("--rates", type=float, nargs="*", default=[50.0, 500.0], help="paced requests/s")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    results = run(args)
    if args.json:
        print(json.dumps(results))
        return 0
    c = results["closed"]
    print(f"bare endpoint, {args.connections} connections, {args.duration:g} s measured per run")
    print(f"{'run':<22}{'req/s':>10}{'answered/offered':>18}{'P50 ms':>9}{'P99 ms':>9}{'errors':>8}")
    print(f"{'closed loop (baseline)':<22}{c['requests_per_s']:>10,.1f}{'-':>18}{c['p50_ms']:>9.2f}{c['p99_ms']:>9.2f}"
          f"{sum(c['errors'].values()):>8}")
    for rate, r in results["paced"].items():
        print(f"{'paced ' + rate + '/s':<22}{r['requests_per_s']:>10,.1f}{r['answered_of_offered']:>18.3f}"
              f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{sum(r['errors'].values()):>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
