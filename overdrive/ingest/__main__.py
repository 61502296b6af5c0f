"""Bulk-load a dataset into the service: over HTTP into a running one, or straight into a data folder.

    python -m overdrive.ingest --url http://127.0.0.1:8000 --format synthetic --users 2000
    python -m overdrive.ingest --format movielens --data ./ml-100k --rebase-time
    python -m overdrive.ingest --format csv --items items.csv --interactions events.csv
    python -m overdrive.ingest --format synthetic --users 2000 --direct ./overdrive-data

Over HTTP, items go first, then signals in batches (`overdrive.ingest.http.post_world`, on the
typed client `overdrive_client`); a batch that meets a connection error, a 429 or a 503 is sent
again after a backoff (its `Retry-After` honoured), and a refusal stops the run with the
server's message, which names the offending row. `--direct` writes into
a stopped embedded deployment's data folder (`overdrive.ingest.direct`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from overdrive.data.importers import Dataset, load_csv, load_jsonl, load_movielens, rebased
from overdrive.data.synthetic import WorldConfig, generate_world, write_world
from overdrive.ingest.direct import ingest_directly
from overdrive.ingest.http import MAX_BATCH, post_world
from overdrive.store.data_dir_lock import DataDirInUse
from overdrive_client import Client, OverdriveError, Retry


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m overdrive.ingest", description=__doc__.split("\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the running service (default %(default)s)")
    p.add_argument("--direct", type=Path, metavar="DATA_DIR",
                   help="offline bulk path: write into this embedded data folder instead (service stopped)")
    p.add_argument("--format", required=True, choices=("synthetic", "movielens", "csv", "jsonl"))
    p.add_argument("--data", type=Path, help="movielens: the folder holding u.data / ratings.dat / ratings.csv")
    p.add_argument("--items", type=Path, help="csv/jsonl: the items file")
    p.add_argument("--interactions", type=Path, help="csv/jsonl: the interactions file")
    g = p.add_argument_group("synthetic world")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--users", type=int, default=500)
    g.add_argument("--items-count", type=int, default=2000)
    g.add_argument("--topics", type=int, default=8)
    g.add_argument("--days", type=float, default=30.0)
    g.add_argument("--signals-per-user", type=float, default=60.0)
    g.add_argument("--out", type=Path, help="also write items.jsonl, signals.jsonl and truth.npz here")
    g.add_argument("--no-post", action="store_true", help="only write --out; do not contact the service")
    p.add_argument("--rebase-time", action="store_true", help="shift times so the newest signal is now")
    p.add_argument("--batch-size", type=int, default=5000, help=f"rows per request, 1..{MAX_BATCH} (default %(default)s)")
    p.add_argument("--concurrency", type=int, default=2, help="batches in flight (default %(default)s)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default %(default)s)")
    p.add_argument("--retries", type=int, default=8, help="retries per batch (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _source(args: argparse.Namespace, p: argparse.ArgumentParser) -> tuple[Iterable[dict], Iterable[dict]]:
    if args.format == "synthetic":
        cfg = WorldConfig(n_users=args.users, n_items=args.items_count, n_topics=args.topics, n_days=args.days,
                          signals_per_user=args.signals_per_user, seed=args.seed)
        started = time.perf_counter()
        world = generate_world(cfg)
        print(f"generated {len(world.items)} items and {len(world.signals)} signals in "
              f"{time.perf_counter() - started:.2f}s", file=sys.stderr)
        if args.out:
            write_world(world, args.out)
            print(f"wrote {args.out}/items.jsonl, signals.jsonl, truth.npz", file=sys.stderr)
        return world.items, world.signals
    if args.format == "movielens":
        if not args.data:
            p.error("--format movielens needs --data FOLDER")
        dataset: Dataset = load_movielens(args.data)
    else:
        if not (args.items or args.interactions):
            p.error(f"--format {args.format} needs --items FILE and/or --interactions FILE")
        dataset = (load_csv if args.format == "csv" else load_jsonl)(args.items, args.interactions)
    if args.rebase_time:
        dataset = rebased(dataset)
    return dataset.items(), dataset.signals()


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if not 1 <= args.batch_size <= MAX_BATCH:
        p.error(f"--batch-size must be between 1 and {MAX_BATCH}")
    if not 1 <= args.concurrency <= 16:
        p.error("--concurrency must be between 1 and 16")
    if args.no_post and not (args.format == "synthetic" and args.out):
        p.error("--no-post only makes sense with --format synthetic --out DIR")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        items, signals = _source(args, p)
        if args.no_post:
            return 0
        if args.direct is not None:
            done = ingest_directly(args.direct, items, signals)
            print(f"loaded {done['items']:,} items in {done['items_s']:.2f}s, {done['signals']:,} signals in "
                  f"{done['signals_s']:.2f}s ({done['signals'] / max(done['signals_s'], 1e-9):,.0f} signals/s; "
                  f"{done['duplicates']:,} duplicates) into {args.direct}")
            return 0
        with Client(args.url, timeout=args.timeout, max_connections=args.concurrency,
                    retry=Retry(attempts=args.retries)) as client:
            report = post_world(client, items, signals, batch_size=args.batch_size, concurrency=args.concurrency,
                                progress=not args.no_progress)
    except (OverdriveError, ValueError, OSError, DataDirInUse) as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
