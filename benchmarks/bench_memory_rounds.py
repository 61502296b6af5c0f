"""RSS of a serving process over rounds of traffic, each ended by a retrain, on a copy of a data folder.

    python -m benchmarks.bench_memory_rounds --data-dir W/api0 [--rounds 4] [--signals 1500]

A soak leaves such a folder (`python -m benchmarks.soak --mode embedded --workdir W`). This copies
it, starts the embedded service on the copy in this process (content features off, no schedule,
the allocator the service runs under), retrains once, then each round sends `--signals` signals
with ids, a ranking for every third and an item write for every tenth through the app (httpx's ASGI
transport, middleware included), and retrains. Printed: RSS after each retrain, after a full
collection and a trim. `--signals 0`: retrains alone, on a log that does not change.
"""

from __future__ import annotations

if __name__ == "__main__":  # the allocator the service runs under (`python -m overdrive.app` chooses it)
    from overdrive.observability.process_memory import use_system_allocator

    use_system_allocator()

import argparse
import asyncio
import gc
import random
import shutil
import sys
import tempfile
from pathlib import Path

import httpx

from benchmarks.bench_retrain_memory import rss_mib
from overdrive.api import create_app
from overdrive.config import Settings
from overdrive.observability.process_memory import release_free_memory
from overdrive.wiring import build_services

KINDS = ("view", "like", "click", "share")


async def _traffic(client: httpx.AsyncClient, rng: random.Random, n: int, users: int, items: int, sent: int) -> None:
    for k in range(n):
        user = f"soak-id-{rng.randrange(users)}"
        await client.post("/signals/process", json={"user_id": user, "signal_type": rng.choice(KINDS),
                                                    "content_id": f"soak-item-{rng.randrange(items)}",
                                                    "signal_id": f"bench-{sent + k}"})
        if k % 3 == 0:
            await client.post("/rank/for-you/enhanced", json={"user_id": user, "limit": 10})
        if k % 10 == 0:
            n_item = rng.randrange(items)
            await client.post("/items", json={"id": f"soak-item-{n_item}", "text": f"item {n_item}", "tags": ["t"]})


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="overdrive-bench-rounds-") as tmp:
        data = Path(tmp) / "data"
        shutil.copytree(args.data_dir, data, ignore=shutil.ignore_patterns(".lock"))
        services = build_services(Settings.load({
            "OVERDRIVE_DATA_DIR": str(data), "MODEL_CACHE_DIR": str(Path(tmp) / "models"),
            "OVERDRIVE_RETRAIN_INTERVAL_MINUTES": "0", "OVERDRIVE_TRAIN_ON_START": "false",
            "OVERDRIVE_CONTENT_FEATURES": "false"}))
        await services.start()
        try:
            rng, sent = random.Random(0), 0
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(services)), base_url="http://bench") as client:
                for round_ in range(args.rounds + 1):
                    if round_:
                        await _traffic(client, rng, args.signals, args.users, args.items, sent)
                        sent += args.signals
                    job = await services.collaborative.train_now(reason="bench_memory_rounds")
                    gc.collect()
                    release_free_memory()
                    print(f"{'first retrain' if not round_ else f'round {round_}'}: RSS {rss_mib()} MiB "
                          f"({job.get('state')}, {job.get('signals')} signals, {job.get('seconds')} s)", flush=True)
        finally:
            await services.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_memory_rounds", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, required=True, help="an embedded data folder (a soak's W/api0)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--signals", type=int, default=1500, help="signals per round (0: retrains alone)")
    p.add_argument("--users", type=int, default=40, help="the soak's users with ids: soak-id-0 …")
    p.add_argument("--items", type=int, default=200, help="the soak's items: soak-item-0 …")
    asyncio.run(run(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
