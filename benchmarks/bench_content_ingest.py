"""Content ingest under load: 10,000 text items into a running service while it keeps ranking.

Starts the real server (embedded default, content features on), posts N short text items in
batches, and measures how long until the background pipeline has computed and indexed every
item's features — while a second client sends rank requests the whole time. Prints the ingest
time, items/s, and rank latency during ingest against rank latency on the idle service (the
baseline, same server, same requests).

    python -m benchmarks.bench_content_ingest [--items 10000 --words 8 --rank-rate 20]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from overdrive.evaluation.server_process import ServerProcess
from overdrive.data.synthetic import topic_vocabulary
from overdrive_client import Client, HTTPError, Retry


def _items(n: int, words: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    _, vocab, tag_sets = topic_vocabulary(8, seed)
    out = []
    for i in range(n):
        topic = rng.randrange(8)
        text = " ".join(rng.choice(list(vocab[topic])) for _ in range(words))
        out.append({"id": f"c{i}", "text": text, "tags": [rng.choice(list(tag_sets[topic]))], "created_at": time.time() - i})
    return out


def _ranker(url: str, ids: list[str], stop: threading.Event, out: list[float], errors: list[int], rate: float) -> None:
    """Rank requests back to back (rate 0) or paced at `rate` per second."""
    rng = random.Random(1)
    with Client(url, timeout=30, retry=Retry.never()) as client:  # an error is counted, not waited out
        while not stop.is_set():
            if rate:
                stop.wait(1.0 / rate)
            user, candidates = f"u{rng.randrange(50)}", rng.sample(ids, 100)
            t0 = time.perf_counter()
            try:
                client.rank(user, limit=20, candidates=candidates)
            except HTTPError as exc:
                errors.append(exc.status_code)
            out.append((time.perf_counter() - t0) * 1000)


def _pct(ms: list[float]) -> str:
    p50, p95, p99 = np.percentile(np.asarray(ms), [50, 95, 99])
    return f"P50 {p50:.2f} ms  P95 {p95:.2f} ms  P99 {p99:.2f} ms  ({len(ms)} requests)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--words", type=int, default=8, help="words per item text")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--rank-rate", type=float, default=0.0,
                        help="rank requests per second during the run; 0 (default): back to back")
    args = parser.parse_args()
    items = _items(args.items + 200, args.words, args.seed)
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(data_dir=Path(tmp) / "data",
                                                             env={"MODEL_CACHE_DIR": str(Path(tmp) / "models")}) as server:
        with Client(server.url, timeout=120) as client:
            warm = items[:200]  # loads the models; these extra items are the rank requests' candidates
            client.put_items(warm)
            while client.ready()["checks"]["models"]["content"]["indexed_items"] < len(warm):
                time.sleep(0.2)
            idle: list[float] = []
            stop, errors = threading.Event(), []
            t = threading.Thread(target=_ranker, args=(server.url, [i["id"] for i in warm], stop, idle, errors, args.rank_rate))
            t.start()
            time.sleep(10)
            stop.set()
            t.join()

            busy: list[float] = []
            stop = threading.Event()
            t = threading.Thread(target=_ranker, args=(server.url, [i["id"] for i in warm], stop, busy, errors, args.rank_rate))
            t.start()
            started = time.perf_counter()
            rest = items[len(warm):]
            for i in range(0, len(rest), 1000):
                client.put_items(rest[i : i + 1000])
            acked = time.perf_counter() - started
            while True:
                content = client.ready()["checks"]["models"]["content"]
                if content["indexed_items"] >= len(items) and content["pipeline"]["backlog"] == 0:
                    break
                time.sleep(0.2)
            done = time.perf_counter() - started
            stop.set()
            t.join()
    print(f"{len(rest):,} text items of {args.words} words: acknowledged in {acked:.1f} s, "
          f"features computed and indexed in {done:.1f} s ({len(rest) / done:,.0f} items/s)")
    print(f"rank, 100 candidates, idle service (baseline): {_pct(idle)}")
    print(f"rank, 100 candidates, during ingest:          {_pct(busy)}")
    print(f"rank errors during the run: {len(errors)}")


if __name__ == "__main__":
    main()
