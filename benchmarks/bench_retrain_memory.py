"""Memory of the serving process across retrains while signals keep coming, in one process.

    python -m benchmarks.bench_retrain_memory [--steps 4] [--signals 100000] [--users 52] [--items 200]

One embedded service (content features off, no tuning) with a small catalog; each step ingests
`--signals` more signals at full speed (parsed as the API parses them, in batches of 10,000, each
waited for), then retrains the collaborative model on the whole log and waits for it. Printed per
step: the signals the collaborative model's update queue still holds before the retrain, and the
process's RSS before and after it (after a full garbage collection). The model is tiny (users ×
items), so what grows with the log is what the process keeps of its retrains.
"""

from __future__ import annotations

if __name__ == "__main__":  # the allocator the service runs under (`python -m overdrive.app` chooses it)
    from overdrive.observability.process_memory import use_system_allocator

    use_system_allocator()

import argparse
import asyncio
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from overdrive.api.schemas import ItemIn, SignalIn
from overdrive.config import Settings
from overdrive.wiring import build_services

KINDS = ("view", "like", "click", "share")


def rss_mib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return -1


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="overdrive-bench-retrain-") as tmp:
        services = build_services(Settings.load({
            "OVERDRIVE_DATA_DIR": str(Path(tmp) / "data"), "MODEL_CACHE_DIR": str(Path(tmp) / "models"),
            "OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0", "OVERDRIVE_TRAIN_ON_START": "false",
            "OVERDRIVE_CF_TUNE": "false", "OVERDRIVE_CONTENT_FEATURES": "false"}))
        await services.start()
        try:
            now = time.time()
            await services.catalog.put([ItemIn.model_validate({"id": f"i{n}", "text": f"item {n}", "tags": [f"t{n % 7}"]})
                                        .to_domain(now) for n in range(args.items)])
            sent, snapshots = 0, []
            for step in range(args.steps):
                for _ in range(0, args.signals, 10_000):
                    now = time.time()
                    batch = [SignalIn.model_validate({
                        "user_id": f"u{(sent + n) % args.users}", "signal_type": KINDS[n % len(KINDS)],
                        "content_id": f"i{(sent + n * 7) % args.items}", "signal_id": f"s{sent + n}"}).to_domain(now)
                        for n in range(10_000)]
                    await services.signals.ingest(batch)
                    sent += len(batch)
                    while services.performance.snapshot()["gauges"].get("signal_queue_depth", 0.0) > 0:
                        await asyncio.sleep(0.005)  # applied, so the next batch fits the buffer
                waiting = services.collaborative.status()["collaborative"]["update_backlog"]
                gc.collect()
                before = rss_mib()
                job = await services.collaborative.train_now(reason="bench_retrain_memory")
                gc.collect()
                if args.tracemalloc:
                    snapshots.append(tracemalloc.take_snapshot())
                print(f"step {step + 1}: log {sent:,} signals; waiting in the update queue {waiting:,}; "
                      f"RSS {before} MiB before the retrain, {rss_mib()} MiB after ({job.get('state')}, "
                      f"{job.get('seconds')} s)", flush=True)
            if len(snapshots) > 1:  # what Python still holds after the last retrain that it did not after the first
                print("Python allocations grown since step 1 (tracemalloc, top 10 lines):")
                for stat in snapshots[-1].compare_to(snapshots[0], "lineno")[:10]:
                    print(f"  {stat}")
        finally:
            await services.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_retrain_memory", description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--signals", type=int, default=100_000, help="signals per step (a multiple of 10,000)")
    p.add_argument("--users", type=int, default=52)
    p.add_argument("--items", type=int, default=200)
    p.add_argument("--tracemalloc", action="store_true",
                   help="also print the Python allocations grown from step 1 to the last (slower, larger RSS)")
    args = p.parse_args(argv)
    if args.tracemalloc:
        tracemalloc.start()
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
