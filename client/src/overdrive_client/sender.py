"""Buffered signal senders: hand over signals one at a time, they go out in batches.

`send` only stamps a `signal_id` (when the signal has none) and appends to a buffer; a full
buffer (`batch_size`) or one older than `flush_interval_s` becomes a batch for
`POST /signals/batch`, posted by `max_in_flight` background threads (tasks, for the async one)
with the client's retries. Because every signal carries its id from the start, a batch that is
retried — after a 429, a 503, a restart of the service, a lost answer — is acknowledged as
duplicates where it had arrived, never counted twice.

Backpressure: at most `max_queued` batches wait; past that `send` blocks until the service has
taken one, so a producer faster than the service slows to its pace instead of filling memory.

A batch that still fails after its retries stops the sender: the next `send`, `flush` or `close`
raises `SenderFailed`, which holds that batch and every signal not yet sent (ids kept, so they
can be sent again safely). `close` (or leaving a `with` block) sends what is buffered and waits
for it; a sender left open is flushed and closed at interpreter exit.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import queue
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from overdrive_client import endpoints as ep
from overdrive_client.errors import OverdriveError, SenderFailed
from overdrive_client.ids import new_signal_id
from overdrive_client.retry import Retry
from overdrive_client.types import Signal

if TYPE_CHECKING:
    from overdrive_client.client import AsyncClient, Client

log = logging.getLogger("overdrive_client")


@dataclass(slots=True)
class SenderStats:
    """Counts so far: `given` to `send`, `acknowledged` by the service in `batches` (of which
    `accepted` were new and `duplicates` already stored), and `retries` over all batches."""

    given: int = 0
    acknowledged: int = 0
    accepted: int = 0
    duplicates: int = 0
    batches: int = 0
    retries: int = 0


def _check(batch_size: int, max_in_flight: int, max_queued: int, flush_interval_s: float) -> None:
    if not 1 <= batch_size <= ep.MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {ep.MAX_BATCH}")
    if max_in_flight < 1 or max_queued < 1 or flush_interval_s <= 0:
        raise ValueError("need max_in_flight >= 1, max_queued >= 1 and flush_interval_s > 0")


class _Failure:
    """The first batch that failed for good, and what was left unsent with it."""

    def __init__(self, cause: OverdriveError, batch: list[Signal], offset: int) -> None:
        self.cause, self.batch, self.offset = cause, batch, offset
        self.unsent: list[Signal] = []

    def error(self, buffered: list[Signal]) -> SenderFailed:
        return SenderFailed(self.cause, failed=self.batch, unsent=self.unsent + buffered, offset=self.offset)


_open_senders: weakref.WeakSet[SignalSender] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    """Send what open senders still buffer. Daemon threads still run while atexit hooks do."""
    for sender in list(_open_senders):
        try:
            sender.close()
        except SenderFailed as exc:
            log.error("signal sender at exit: %s (%d signals not sent)", exc, len(exc.failed) + len(exc.unsent))


class SignalSender:
    """Batches signals for a `Client` on background threads; see the module docstring.

        with client.signal_sender(batch_size=5000) as sender:
            for event in events:
                sender.send({"user_id": event.user, "signal_type": "view", "content_id": event.item})
        print(sender.stats)
    """

    def __init__(self, client: Client, *, batch_size: int = 5000, max_in_flight: int = 2, max_queued: int = 4,
                 flush_interval_s: float = 1.0, retry: Retry | None = None) -> None:
        _check(batch_size, max_in_flight, max_queued, flush_interval_s)
        self._client = client if retry is None else client.with_options(retry=retry)
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._lock = threading.Lock()
        self._buffer: list[Signal] = []
        self._buffer_since = 0.0
        self._offset = 0  # position of the buffer's first signal among all given
        self._queue: queue.Queue[tuple[int, list[Signal]] | None] = queue.Queue(maxsize=max_queued)
        self._failure: _Failure | None = None
        self._closed = False
        self._stats_lock = threading.Lock()
        self.stats = SenderStats()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, name=f"overdrive-sender-{n}", daemon=True)
                         for n in range(max_in_flight)]
        self._threads.append(threading.Thread(target=self._tick, name="overdrive-sender-tick", daemon=True))
        for thread in self._threads:
            thread.start()
        _open_senders.add(self)

    # ----------------------------------------------------------------------------- producing

    def send(self, signal: Signal) -> None:
        """Buffer one signal (a `signal_id` added when missing); may block while the service catches up."""
        if not signal.get("signal_id"):
            signal = {**signal, "signal_id": new_signal_id()}
        with self._lock:
            if self._failure is not None or self._closed:
                self._refuse()
            buffer = self._buffer
            if not buffer:
                self._buffer_since = time.monotonic()
            buffer.append(signal)
            if len(buffer) < self._batch_size:
                return
            batch = self._take()
        self._queue.put(batch)

    def extend(self, signals: Iterable[Signal]) -> None:
        """`send` each of `signals`."""
        send = self.send
        for signal in signals:
            send(signal)

    def flush(self) -> None:
        """Send everything buffered and wait until the service has acknowledged all of it."""
        with self._lock:
            if self._failure is not None:
                self._refuse()
            batch = self._take() if self._buffer else None
        if batch is not None:
            self._queue.put(batch)
        self._queue.join()
        with self._lock:
            if self._failure is not None:
                self._refuse()

    def close(self) -> None:
        """Flush, then stop the background threads. Idempotent."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            with self._lock:
                self._closed = True  # from here `send` refuses; a send that raced the flush is taken below
                rest = self._take() if self._buffer and self._failure is None else None
            self._stop.set()
            self._threads[-1].join(timeout=30)  # the ticker first: nothing may be queued behind the sentinels
            if rest is not None:
                self._queue.put(rest)
            for _ in self._threads[:-1]:
                self._queue.put(None)
            for thread in self._threads[:-1]:
                thread.join(timeout=30)
            _open_senders.discard(self)
        if self._failure is not None:
            with self._lock:
                self._refuse()

    def __enter__(self) -> SignalSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ internals

    def _take(self) -> tuple[int, list[Signal]]:
        """The buffer as a batch (under the lock)."""
        batch = (self._offset, self._buffer)
        self._offset += len(self._buffer)
        self.stats.given += len(self._buffer)
        self._buffer = []
        return batch

    def _refuse(self) -> None:
        """Raise why nothing more is taken (under the lock)."""
        if self._failure is not None:
            buffered, self._buffer = self._buffer, []
            raise self._failure.error(buffered)
        raise RuntimeError("the signal sender is closed")

    def _work(self) -> None:
        while True:
            entry = self._queue.get()
            try:
                if entry is None:
                    return
                offset, batch = entry
                if self._failure is not None:
                    with self._lock:
                        self._failure.unsent.extend(batch)
                    continue
                try:
                    ack, retries = self._client.call_counted(ep.send_signals(batch))
                except OverdriveError as exc:
                    with self._lock:
                        if self._failure is None:
                            self._failure = _Failure(exc, batch, offset)
                        else:
                            self._failure.unsent.extend(batch)
                    continue
                with self._stats_lock:
                    stats = self.stats
                    stats.acknowledged += len(batch)
                    stats.accepted += ack["accepted"]
                    stats.duplicates += ack["duplicates"]
                    stats.batches += 1
                    stats.retries += retries
            finally:
                self._queue.task_done()

    def _tick(self) -> None:
        """Send a partial batch once its first signal has waited `flush_interval_s`."""
        while not self._stop.wait(self._flush_interval_s / 4):
            with self._lock:
                if (not self._buffer or self._failure is not None
                        or time.monotonic() - self._buffer_since < self._flush_interval_s):
                    continue
                batch = self._take()
            self._queue.put(batch)


class AsyncSignalSender:
    """`SignalSender` for an `AsyncClient`: batches posted by tasks on the running loop.

        async with client.signal_sender() as sender:
            await sender.send({"user_id": "u1", "signal_type": "view", "content_id": "v1"})

    There is no flush at interpreter exit (the loop is gone by then): use `async with` or
    `await sender.aclose()`.
    """

    def __init__(self, client: AsyncClient, *, batch_size: int = 5000, max_in_flight: int = 2,
                 flush_interval_s: float = 1.0, retry: Retry | None = None) -> None:
        _check(batch_size, max_in_flight, 1, flush_interval_s)
        self._client = client if retry is None else client.with_options(retry=retry)
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._buffer: list[Signal] = []
        self._buffer_since = 0.0
        self._offset = 0
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._failure: _Failure | None = None
        self._closed = False
        self.stats = SenderStats()

    async def send(self, signal: Signal) -> None:
        """Buffer one signal; waits only when `max_in_flight` batches are already on their way."""
        if self._failure is not None or self._closed:
            self._refuse()
        if not signal.get("signal_id"):
            signal = {**signal, "signal_id": new_signal_id()}
        if not self._buffer:
            self._buffer_since = time.monotonic()
            if self._ticker is None:
                self._ticker = asyncio.get_running_loop().create_task(self._tick())
        self._buffer.append(signal)
        if len(self._buffer) >= self._batch_size:
            await self._submit()

    async def extend(self, signals: Iterable[Signal]) -> None:
        for signal in signals:
            await self.send(signal)

    async def flush(self) -> None:
        """Send everything buffered and wait until the service has acknowledged all of it."""
        if self._failure is None and self._buffer:
            await self._submit()
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
        if self._failure is not None:
            self._refuse()

    async def aclose(self) -> None:
        if self._closed:
            return
        try:
            await self.flush()
        finally:
            self._closed = True
            if self._ticker is not None:
                self._ticker.cancel()
                try:
                    await self._ticker
                except asyncio.CancelledError:
                    pass

    async def __aenter__(self) -> AsyncSignalSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _refuse(self) -> None:
        if self._failure is not None:
            buffered, self._buffer = self._buffer, []
            raise self._failure.error(buffered)
        raise RuntimeError("the signal sender is closed")

    async def _submit(self) -> None:
        offset, batch = self._offset, self._buffer
        self._offset += len(batch)
        self.stats.given += len(batch)
        self._buffer = []
        await self._slots.acquire()
        task = asyncio.get_running_loop().create_task(self._post(offset, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, offset: int, batch: list[Signal]) -> None:
        try:
            if self._failure is not None:
                self._failure.unsent.extend(batch)
                return
            try:
                ack, retries = await self._client.call_counted(ep.send_signals(batch))
            except OverdriveError as exc:
                if self._failure is None:
                    self._failure = _Failure(exc, batch, offset)
                else:
                    self._failure.unsent.extend(batch)
                return
            stats = self.stats
            stats.acknowledged += len(batch)
            stats.accepted += ack["accepted"]
            stats.duplicates += ack["duplicates"]
            stats.batches += 1
            stats.retries += retries
        finally:
            self._slots.release()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval_s / 4)
            if (self._buffer and self._failure is None
                    and time.monotonic() - self._buffer_since >= self._flush_interval_s):
                await self._submit()
