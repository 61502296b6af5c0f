"""One SQLite database in WAL mode, with a single writer thread that commits in groups.

Every write job submitted while a commit is in flight joins the next transaction, so concurrent
requests share one fsync (`synchronous=FULL`: a committed write survives power loss and SIGKILL).
Each job runs inside its own SAVEPOINT, so one failing job rolls back alone. Reads use one
connection per thread and run off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from overdrive.domain.errors import BackendUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
_STOP = object()
_ALONE = object()


class SqliteDatabase:
    def __init__(self, *, path: Path, schema: str, readers: int = 4) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._local = threading.local()
        self._jobs: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="sqlite-read")
        self._writer_conn = self._connect()
        self._writer_conn.executescript(schema)
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="sqlite-writer", daemon=True)
        self._writer.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten, not left in free pages
        return conn

    async def write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run `job` in the next group transaction; returns once it is committed to disk."""
        if self._closed:
            raise BackendUnavailable("store is closed")
        fut: Future[T] = Future()
        self._jobs.put((job, fut))
        return await asyncio.wrap_future(fut)

    async def write_alone(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run `job` on the writer's connection outside any transaction, between two groups (for
        what SQLite refuses inside one: VACUUM, a checkpoint that truncates the WAL)."""
        if self._closed:
            raise BackendUnavailable("store is closed")
        fut: Future[T] = Future()
        self._jobs.put((job, fut, _ALONE))
        return await asyncio.wrap_future(fut)

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run `query` on a reader thread's own connection."""
        if self._closed:
            raise BackendUnavailable("store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, self.read_sync, query)
        except RuntimeError as exc:  # the reader pool shut down while we queued
            raise BackendUnavailable("store is closed") from exc

    def read_sync(self, query: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise BackendUnavailable("store is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        try:
            return query(conn)
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"store read failed: {exc}") from exc

    def _write_loop(self) -> None:
        conn = self._writer_conn
        while True:
            first = self._jobs.get()
            if first is _STOP:
                return
            if len(first) == 3:  # type: ignore[arg-type]
                self._run_alone(conn, *first[:2])  # type: ignore[index]
                continue
            batch = [first]
            held = None
            while len(batch) < 256:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP or len(nxt) == 3:  # type: ignore[arg-type]
                    held = nxt
                    break
                batch.append(nxt)
            self._commit_group(conn, batch)  # type: ignore[arg-type]
            if held is _STOP:
                return
            if held is not None:
                self._run_alone(conn, *held[:2])  # type: ignore[index]

    @staticmethod
    def _run_alone(conn: sqlite3.Connection, job: Callable, fut: Future) -> None:
        try:
            fut.set_result(job(conn))
        except Exception as exc:
            fut.set_exception(BackendUnavailable(f"store maintenance failed: {exc}") if isinstance(exc, sqlite3.Error) else exc)

    @staticmethod
    def _commit_group(conn: sqlite3.Connection, batch: list[tuple[Callable, Future]]) -> None:
        results: list[tuple[Future, object, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job, fut in batch:
                conn.execute("SAVEPOINT job")
                try:
                    results.append((fut, job(conn), None))
                    conn.execute("RELEASE job")
                except Exception as exc:  # the job's own failure: undo only its writes
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((fut, None, exc))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.exception("group commit failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for _, fut in batch:
                fut.set_exception(BackendUnavailable(f"store write failed: {exc}"))
            return
        for fut, value, err in results:
            if err is not None:
                fut.set_exception(err)
            else:
                fut.set_result(value)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._jobs.put(_STOP)
        await asyncio.to_thread(self._writer.join)
        self._writer_conn.close()
        self._readers.shutdown(wait=True)
