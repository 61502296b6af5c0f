"""Bulk-load a dataset into a running service over HTTP: items first, then signals, in batches.

    python -m overdrive.evaluation.ingest --url http://127.0.0.1:8000 --format synthetic --users 2000
    python -m overdrive.evaluation.ingest --format movielens --data ./ml-100k --rebase-time
    python -m overdrive.evaluation.ingest --format csv --items items.csv --interactions events.csv
    python -m overdrive.evaluation.ingest --format synthetic --users 2000 --direct ./overdrive-data

Batches travel over keep-alive connections, two signal batches in flight by default so the
service can validate one while it commits the other. A batch that meets a connection error, a
429 or a 5xx is sent again after a backoff: every signal carries a `signal_id` (readers make
deterministic ones), so a retry is acknowledged as a duplicate, never counted twice. Any other
4xx stops the run with the server's message, which names the offending row.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import re
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import orjson
from tqdm import tqdm

from overdrive.evaluation.direct_load import load_directly
from overdrive.evaluation.importers import Dataset, load_csv, load_jsonl, load_movielens, rebased
from overdrive.evaluation.synthetic import World, WorldConfig, generate_world
from overdrive.store.data_dir_lock import DataDirInUse

log = logging.getLogger(__name__)

MAX_BATCH = 10_000
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_JSON = {"content-type": "application/json"}


class IngestError(Exception):
    """The service refused a batch (a 4xx other than 429), or retries ran out."""


@dataclass(slots=True)
class IngestReport:
    items: int = 0
    signals: int = 0
    accepted: int = 0
    duplicates: int = 0
    item_seconds: float = 0.0
    signal_seconds: float = 0.0
    retries: int = 0

    def summary(self) -> str:
        item_rate = self.items / self.item_seconds if self.item_seconds else 0.0
        signal_rate = self.signals / self.signal_seconds if self.signal_seconds else 0.0
        return (
            f"ingested {self.items} items in {self.item_seconds:.2f}s ({item_rate:,.0f} items/s), "
            f"{self.signals} signals in {self.signal_seconds:.2f}s ({signal_rate:,.0f} signals/s; "
            f"{self.accepted} accepted, {self.duplicates} duplicates, {self.retries} retries)"
        )


@dataclass(slots=True)
class Retry:
    """How hard to try one batch: `attempts` retries, backoff doubling from `base_s` to `max_s`."""

    attempts: int = 8
    base_s: float = 0.25
    max_s: float = 10.0
    sleep: Callable[[float], None] = field(default=time.sleep)


def post_world(
    client: httpx.Client,
    items: Iterable[dict],
    signals: Iterable[dict],
    *,
    batch_size: int = 5000,
    concurrency: int = 2,
    progress: bool = False,
    retry: Retry | None = None,
) -> IngestReport:
    """POST every item to /items/batch, then every signal to /signals/batch; returns the counts.

    `client` should have the service as its `base_url`. Inputs may be lists or any iterables;
    generators stream, holding at most `concurrency` batches. Signal batches go up to
    `concurrency` at a time, so the service can validate one while it commits another (signals
    may then be stored slightly out of order, which the service accepts). Items go one batch at
    a time, and all are acknowledged before the first signal is sent.
    """
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    retry = retry or Retry()
    report = IngestReport()
    run = uuid.uuid4().hex[:8]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ingest") as pool:
        started = time.perf_counter()
        with tqdm(total=_len(items), unit="item", desc="items", disable=not progress) as bar:
            for batch, _ in _send(pool, 1, client, "items", items, batch_size, f"ingest-{run}-i", retry, report):
                report.items += len(batch)
                bar.update(len(batch))
        report.item_seconds = time.perf_counter() - started
        started = time.perf_counter()
        with tqdm(total=_len(signals), unit="signal", desc="signals", disable=not progress, smoothing=0.1) as bar:
            for batch, ack in _send(pool, concurrency, client, "signals", signals, batch_size, f"ingest-{run}-s", retry, report):
                report.signals += len(batch)
                report.accepted += int(ack.get("accepted", 0))
                report.duplicates += int(ack.get("duplicates", 0))
                bar.update(len(batch))
        report.signal_seconds = time.perf_counter() - started
    return report


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    """One JSON object per line; returns the number of rows written."""
    n = 0
    with path.open("wb") as f:
        for n, row in enumerate(rows, 1):
            f.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
    return n


def write_world(world: World, out: Path) -> None:
    """items.jsonl and signals.jsonl (readable by `--format jsonl`), and the ground truth in truth.npz."""
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "items.jsonl", world.items)
    write_jsonl(out / "signals.jsonl", world.signals)
    np.savez_compressed(
        out / "truth.npz",
        topic_names=np.array(world.topic_names),
        user_ids=np.array(world.user_ids),
        item_ids=np.array([i["id"] for i in world.items]),
        user_topics=world.user_topics,
        user_topics_start=world.user_topics_start,
        item_topic=world.item_topic,
        item_secondary_topic=world.item_secondary_topic,
        item_popularity=world.item_popularity,
        start_end=np.array([world.start, world.end]),
    )


def _send(pool: ThreadPoolExecutor, concurrency: int, client: httpx.Client, key: str, rows: Iterable[dict],
          batch_size: int, request_prefix: str, retry: Retry, report: IngestReport) -> Iterator[tuple[list[dict], dict]]:
    """Post batches with up to `concurrency` in flight; yields (batch, ack) in submission order."""
    pending: deque[tuple[list[dict], Future]] = deque()
    try:
        for n, batch in enumerate(_batches(rows, batch_size)):
            args = (client, f"/{key}/batch", key, batch, f"{request_prefix}{n}", n * batch_size, retry)
            pending.append((batch, pool.submit(_post, *args)))
            while len(pending) >= concurrency:
                yield _settle(pending.popleft(), report)
        while pending:
            yield _settle(pending.popleft(), report)
    finally:
        for _, fut in pending:
            fut.cancel()


def _settle(entry: tuple[list[dict], Future], report: IngestReport) -> tuple[list[dict], dict]:
    batch, fut = entry
    ack, retries = fut.result()
    report.retries += retries
    return batch, ack


def _post(client: httpx.Client, path: str, key: str, batch: list[dict], request_id: str, first_row: int,
          retry: Retry) -> tuple[dict, int]:
    """One batch, retried on connection errors, 429 and 5xx; returns (the ack, retries used)."""
    body = orjson.dumps({key: batch})
    headers = {**_JSON, "x-request-id": request_id}
    problem = ""
    for attempt in range(retry.attempts + 1):
        try:
            response = client.post(path, content=body, headers=headers)
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__}: {exc}"
            wait = None
        else:
            if response.status_code < 300:
                return response.json(), attempt
            if response.status_code not in _RETRY_STATUS:
                raise IngestError(f"POST {path} (rows {first_row}..{first_row + len(batch) - 1}) answered "
                                  f"{response.status_code}: {_message(response, key, first_row)}")
            problem = f"HTTP {response.status_code}"
            wait = _retry_after(response)
        if attempt < retry.attempts:
            delay = wait if wait is not None else min(retry.base_s * 2**attempt, retry.max_s)
            log.warning("POST %s [%s] failed (%s); retrying in %.2fs", path, request_id, problem, delay)
            retry.sleep(delay)
    raise IngestError(f"POST {path} [{request_id}] failed after {retry.attempts} retries: {problem}")


def _message(response: httpx.Response, key: str, first_row: int) -> str:
    """The server's error message, with batch-relative row numbers made absolute."""
    try:
        text = str(response.json().get("message", response.text))
    except ValueError:
        text = response.text[:500]
    return re.sub(rf"{key}\[(\d+)\]", lambda m: f"{key}[{first_row + int(m.group(1))}]", text)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(float(response.headers["retry-after"]), 60.0)
    except (KeyError, ValueError):
        return None


def _batches(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    it = iter(rows)
    while batch := list(itertools.islice(it, size)):
        yield batch


def _len(rows: Iterable) -> int | None:
    return len(rows) if hasattr(rows, "__len__") else None  # type: ignore[arg-type]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m overdrive.evaluation.ingest", description=__doc__.split("\n")[0])
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
            done = load_directly(args.direct, items, signals)
            print(f"loaded {done['items']:,} items in {done['items_s']:.2f}s, {done['signals']:,} signals in "
                  f"{done['signals_s']:.2f}s ({done['signals'] / max(done['signals_s'], 1e-9):,.0f} signals/s; "
                  f"{done['duplicates']:,} duplicates) into {args.direct}")
            return 0
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        with httpx.Client(base_url=args.url, timeout=args.timeout, limits=limits) as client:
            report = post_world(client, items, signals, batch_size=args.batch_size, concurrency=args.concurrency,
                                progress=not args.no_progress, retry=Retry(attempts=args.retries))
    except (IngestError, ValueError, OSError, DataDirInUse) as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
