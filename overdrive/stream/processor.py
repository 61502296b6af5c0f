"""RealTimeSignalProcessor: a bounded priority queue of signals drained by workers into live state.

Strong signals (follow, share, comment, report) are applied ahead of weak ones (scroll). The
queue holds at most `SIGNAL_BUFFER_SIZE` signals: `reserve` refuses with `Overloaded` (HTTP 429
with Retry-After) before anything is written, so nothing is ever dropped silently. Workers take
batches and hand them to the `SignalApplier` (item lookup, live state, learners, stage timings),
retrying through a live-state outage. `settled(user_id)` waits until every signal submitted for
that user is applied: ranking calls it for read-your-writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence

from overdrive.domain.errors import Overloaded
from overdrive.domain.types import Signal
from overdrive.observability.performance import PerformanceMonitor
from overdrive.stream.applier import SignalApplier, until_stored

log = logging.getLogger(__name__)

# Lower runs first. Strong intent beats passive consumption.
PRIORITY: dict[str, int] = {
    "follow": 0, "share": 0, "comment": 0, "report": 0, "hide": 0,
    "like": 1, "bookmark": 1, "completion": 1, "dislike": 1,
    "view": 2, "click": 2, "dwell": 2, "skip": 2,
    "scroll": 3,
}
_LANES = max(PRIORITY.values()) + 1


class RealTimeSignalProcessor:
    def __init__(
        self,
        *,
        applier: SignalApplier,
        buffer_size: int,
        workers: int,
        monitor: PerformanceMonitor,
        batch_size: int = 1024,
    ) -> None:
        self._applier = applier
        self._buffer_size = buffer_size
        self._workers_n = workers
        self._monitor = monitor
        self._batch_size = batch_size
        # One FIFO lane per priority; workers always drain the strongest non-empty lane first.
        self._lanes: list[deque[tuple[float, Signal]]] = [deque() for _ in range(_LANES)]
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._reserved = 0
        self._pending: dict[str, int] = defaultdict(int)
        self._unapplied = 0  # submitted and not yet through apply and its hooks (queued + in flight)
        self._settled: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task] = []
        monitor.gauge("signal_queue_depth", lambda: float(self._queued))
        monitor.gauge("signals_unapplied", lambda: float(self._unapplied))
        monitor.gauge("signal_queue_capacity", lambda: float(self._buffer_size))

    @property
    def depth(self) -> int:
        return self._queued + self._reserved

    @property
    def idle(self) -> bool:
        """Nothing being logged, queued or applied."""
        return self._reserved == 0 and self._unapplied == 0

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name=f"signal-worker-{i}") for i in range(self._workers_n)]

    async def stop(self) -> None:
        """Apply everything queued, then stop the workers."""
        await self.drain()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []

    @contextlib.contextmanager
    def reserve(self, n: int) -> Iterator[None]:
        """Hold room for `n` signals while they are made durable; `Overloaded` if there is none."""
        if self.depth + n > self._buffer_size:
            raise Overloaded(f"signal buffer full ({self.depth}/{self._buffer_size}); retry shortly", retry_after_s=1.0)
        self._reserved += n
        try:
            yield
        finally:
            self._reserved -= n

    def submit(self, signals: Sequence[Signal]) -> None:
        """Queue durable signals for application (never blocks; room was reserved)."""
        enqueued = time.perf_counter()
        lanes, pending = self._lanes, self._pending
        for s in signals:
            pending[s.user_id] += 1
            lanes[PRIORITY.get(s.signal_type, 2)].append((enqueued, s))
        self._queued += len(signals)
        self._unapplied += len(signals)
        if signals:
            self._wakeup.set()

    async def settled(self, user_id: str, *, timeout_s: float = 1.0) -> bool:
        """Wait until every submitted signal of this user is applied (False on timeout)."""
        if not self._pending.get(user_id):
            return True
        event = self._settled.setdefault(user_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def drain(self) -> None:
        """Wait until the queue is empty and every taken batch is applied."""
        while self._pending:
            await asyncio.sleep(0.001)

    def _take(self) -> list[tuple[float, Signal]]:
        batch: list[tuple[float, Signal]] = []
        for lane in self._lanes:
            while lane and len(batch) < self._batch_size:
                batch.append(lane.popleft())
        self._queued -= len(batch)
        return batch

    async def _work(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            signals = [entry[1] for entry in batch]
            self._monitor.record_stage("queue_wait", (time.perf_counter() - min(e[0] for e in batch)) * 1000.0, len(batch))
            try:
                await until_stored(lambda: self._applier.apply(signals))
            except Exception:  # a bug, not an outage: keep the worker alive, the log keeps the signals
                log.exception("applying %d signals failed", len(batch))
            finally:
                self._done(signals)

    def _done(self, signals: list[Signal]) -> None:
        self._unapplied -= len(signals)
        for s in signals:
            left = self._pending[s.user_id] - 1
            if left:
                self._pending[s.user_id] = left
                continue
            del self._pending[s.user_id]
            event = self._settled.pop(s.user_id, None)
            if event is not None:
                event.set()
