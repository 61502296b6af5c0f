"""Background feature extraction: item writes enqueue, a worker thread encodes in batches.

Why this shape:
- **The queue is a journal.** `submit` writes the items to a SQLite table (the journal) and
  returns; the worker reads batches from it, extracts, hands features to the `sink`, and only
  then deletes the rows. A crash or restart loses nothing: `start()` resumes from the journal.
  Re-submitting an item that is still pending replaces it (latest content wins, one encode).
- **Bounded caller time.** `submit` holds the journal lock for one insert; if it cannot get the
  lock within `submit_timeout_s` the items go to an in-memory overflow that the worker journals
  next, and the receipt says so (`deferred`) — the caller never waits on an encoder.
- **Batching.** The worker waits `linger_s` for a batch to fill, then takes up to `batch_size`
  rows oldest first; with a `ContentCache` in the extractor unchanged content costs a lookup.
- **Serving stays responsive.** The worker thread lowers its own CPU priority (`nice`, Linux)
  and loads the models itself, so the encoder's runtime threads inherit that priority.
- **Failures.** If `extract` or the sink raises, the batch stays journaled and is retried after
  `retry_backoff_s`; after `max_attempts` its rows are parked (`failed` in `stats()`) until
  `retry_failed()`. Per-item media errors are not failures: they arrive in `ContentFeatures.errors`.

The sink runs on the worker thread. To write to an asyncio store, bridge with
``asyncio.run_coroutine_threadsafe(store.put(...), loop).result()``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from overdrive.domain.types import Item
from overdrive.content.types import ContentFeatures

log = logging.getLogger(__name__)

Sink = Callable[[list[ContentFeatures]], None]


class Extractor(Protocol):
    """What the pipeline needs of an extractor (`MultiModalFeatureExtractor` is one)."""

    def load(self) -> None: ...

    def extract(self, items: Sequence[Item]) -> list[ContentFeatures]: ...


@dataclass(frozen=True, slots=True)
class SubmitReceipt:
    """What became of a `submit`: journaled now, or held in memory to be journaled next."""

    queued: int
    deferred: int
    backlog: int


class ContentPipeline:
    """Durable, batched, background feature extraction; see the module docstring."""

    def __init__(
        self,
        *,
        extractor: Extractor,
        sink: Sink,
        journal_path: Path | str = ":memory:",
        batch_size: int = 64,
        linger_s: float = 0.05,
        submit_timeout_s: float = 0.25,
        max_attempts: int = 3,
        retry_backoff_s: float = 1.0,
        nice: int = 5,
    ) -> None:
        if batch_size < 1 or max_attempts < 1:
            raise ValueError("batch_size and max_attempts must be >= 1")
        self._extractor = extractor
        self._sink = sink
        self._batch_size = batch_size
        self._linger_s = linger_s
        self._submit_timeout_s = submit_timeout_s
        self._max_attempts = max_attempts
        self._backoff_s = retry_backoff_s
        self._nice = nice
        path = str(journal_path)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=submit_timeout_s)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS pending (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " item_id TEXT NOT NULL UNIQUE, payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
            " last_error TEXT)"
        )
        self._lock = threading.Lock()  # guards the connection
        self._overflow: deque[list[Item]] = deque()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()  # nothing submitted yet (a journal left from a previous run still counts)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._processed = 0
        self._batches = 0
        self._failures = 0
        self._last_error: str | None = None

    # -- caller side ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker (it loads the models first); resumes whatever the journal holds."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="feature-pipeline", daemon=True)
        self._thread.start()

    def submit(self, items: Sequence[Item]) -> SubmitReceipt:
        """Enqueue items for extraction; returns within about `submit_timeout_s`, never loses them."""
        items = list(items)
        if not items:
            return SubmitReceipt(0, 0, self.backlog())
        self._idle.clear()
        if self._lock.acquire(timeout=self._submit_timeout_s):
            try:
                self._journal(items)
                backlog = self._count()
            except sqlite3.OperationalError:  # database busy beyond the bound
                self._overflow.append(items)
                backlog = -1
            finally:
                self._lock.release()
            queued = len(items) if backlog >= 0 else 0
        else:
            self._overflow.append(items)
            queued, backlog = 0, -1
        self._wake.set()
        deferred = len(items) - queued
        if deferred:
            log.info("feature journal busy: %d items held in memory, journaled next", deferred)
        return SubmitReceipt(queued=queued, deferred=deferred, backlog=backlog)

    def backlog(self) -> int:
        """Items waiting (journaled, not parked as failed) plus those held in memory."""
        with self._lock:
            waiting = self._count()
        return waiting + sum(len(b) for b in list(self._overflow))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            waiting = self._count()
            failed = int(self._db.execute(
                "SELECT COUNT(*) FROM pending WHERE attempts >= ?", (self._max_attempts,)
            ).fetchone()[0])
        return {
            "running": self._thread is not None and self._thread.is_alive(),
            "backlog": waiting + sum(len(b) for b in list(self._overflow)),
            "failed": failed,
            "processed": self._processed,
            "batches": self._batches,
            "batch_failures": self._failures,
            "last_error": self._last_error,
        }

    def retry_failed(self) -> int:
        """Give parked items another `max_attempts`; returns how many."""
        with self._lock:
            n = self._db.execute("UPDATE pending SET attempts = 0 WHERE attempts >= ?", (self._max_attempts,)).rowcount
        self._wake.set()
        return int(n)

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is waiting (parked failures aside); False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if self.backlog() == 0 and self._idle.is_set():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.02, left))  # poll gently: the worker needs the lock and the GIL

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current batch; what is still journaled resumes on the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            while self._overflow:
                self._journal(self._overflow.popleft())

    def close(self) -> None:
        self.stop()
        with self._lock:
            self._db.close()

    # -- worker side ---------------------------------------------------------------------------

    def _run(self) -> None:
        if self._nice and hasattr(os, "setpriority"):
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
            except OSError:
                log.debug("could not lower the feature worker's priority")
        try:
            self._extractor.load()
        except Exception:
            log.exception("feature extractor failed to load; extraction will retry per batch")
        while not self._stop.is_set():
            self._drain_overflow()
            batch = self._next_batch()
            if not batch:
                self._idle.set()
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                continue
            self._idle.clear()
            self._process(batch)

    def _drain_overflow(self) -> None:
        while self._overflow:
            with self._lock:
                self._journal(self._overflow.popleft())

    def _next_batch(self) -> list[tuple[int, Item]]:
        with self._lock:
            waiting = self._count()
        if waiting == 0:
            return []
        if waiting < self._batch_size and self._linger_s > 0:
            self._stop.wait(self._linger_s)  # let a burst of submits fill the batch
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, payload FROM pending WHERE attempts < ? ORDER BY seq LIMIT ?",
                (self._max_attempts, self._batch_size),
            ).fetchall()
        return [(seq, _item_from_json(payload)) for seq, payload in rows]

    def _process(self, batch: list[tuple[int, Item]]) -> None:
        seqs = [seq for seq, _ in batch]
        try:
            features = self._extractor.extract([item for _, item in batch])
            self._sink(features)
        except Exception as exc:
            self._failures += 1
            self._last_error = f"{type(exc).__name__}: {exc}"
            log.exception("feature batch of %d failed; will retry", len(batch))
            with self._lock:
                self._db.executemany(
                    "UPDATE pending SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                    [(self._last_error, s) for s in seqs],
                )
            self._stop.wait(self._backoff_s)
            return
        with self._lock:  # a row re-submitted meanwhile has a new seq and survives this delete
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM pending WHERE seq = ?", [(s,) for s in seqs])
            self._db.execute("COMMIT")
        self._processed += len(batch)
        self._batches += 1

    # -- journal (caller holds self._lock) -------------------------------------------------------

    def _journal(self, items: list[Item]) -> None:
        rows = list({it.id: (it.id, _item_to_json(it)) for it in items}.values())  # last one wins
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("DELETE FROM pending WHERE item_id = ?", [(r[0],) for r in rows])
            self._db.executemany("INSERT INTO pending (item_id, payload) VALUES (?, ?)", rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _count(self) -> int:
        return int(self._db.execute(
            "SELECT COUNT(*) FROM pending WHERE attempts < ?", (self._max_attempts,)
        ).fetchone()[0])


def _item_to_json(item: Item) -> str:
    data = dataclasses.asdict(item)
    data["tags"] = list(item.tags)
    return json.dumps(data, default=str)


def _item_from_json(payload: str) -> Item:
    data = json.loads(payload)
    data["tags"] = tuple(data.get("tags") or ())
    return Item(**data)
