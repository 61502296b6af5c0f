"""Embedded SignalBus: the SQLite log is the durable medium; the in-process processor consumes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Sequence

from overdrive.domain.errors import BackendUnavailable
from overdrive.domain.types import Signal
from overdrive.observability.performance import PerformanceMonitor
from overdrive.store.protocols import FeatureStore, ItemCatalog, SignalLog
from overdrive.stream.applier import Learners, SignalApplier, until_stored
from overdrive.stream.processor import RealTimeSignalProcessor

log = logging.getLogger(__name__)


class InProcessSignalBus:
    def __init__(
        self,
        *,
        signal_log: SignalLog,
        processor: RealTimeSignalProcessor,
        applier: SignalApplier,
        replay: bool = True,
        checkpoint_every_s: float = 1.0,
    ) -> None:
        """`replay=True`: live state lives in this process's memory and is rebuilt from the whole log
        at start. `replay=False`: it outlives the process (Redis), so at start only the log's tail
        beyond the applied mark is applied — signals acknowledged but not applied when the process
        died. Every signal gets an id before it is logged, so applying one twice counts it once;
        the mark moves on every `checkpoint_every_s` at a moment nothing is in flight."""
        self._replay = replay
        self._log = signal_log
        self._processor = processor
        self._applier = applier
        self._checkpoint_every_s = checkpoint_every_s
        self._marked = 0
        self._resume_to: int | None = None  # the tail to apply at start, until it is applied
        self._checkpoints: asyncio.Task | None = None

    async def publish(self, signals: Sequence[Signal]) -> list[Signal]:
        if not self._replay:  # the tail may be applied again after a crash: ids make that harmless
            signals = [s if s.signal_id is not None else dataclasses.replace(s, signal_id=uuid.uuid4().hex)
                       for s in signals]
        with self._processor.reserve(len(signals)):
            fresh = await self._log.append(signals)
            self._processor.submit(fresh)
        return fresh

    async def settled(self, user_id: str, *, timeout_s: float) -> bool:
        return await self._processor.settled(user_id, timeout_s=timeout_s)

    async def start(self) -> None:
        """Rebuild live state from the whole log, or apply the tail it has not seen; then process."""
        if self._replay:
            started = time.perf_counter()
            total = await self._applier.rebuild(self._log.scan())
            log.info("replayed %d signals into live state in %.2fs", total, time.perf_counter() - started)
        else:
            self._resume_to = await self._log.last_position()
            await self._resume()
            self._checkpoints = asyncio.create_task(self._checkpoint_every())
        await self._processor.start()

    async def _resume(self) -> None:
        """Apply what the log holds beyond the applied mark (up to where it ended at start)."""
        assert self._resume_to is not None
        mark = await self._log.applied_position()
        if mark is None:  # a log from before marks: its signals were applied as they came
            await self._log.mark_applied(self._resume_to)
        elif mark < self._resume_to:
            started, total = time.perf_counter(), 0
            for batch in self._log.scan(after=mark):
                if await until_stored(lambda b=batch: self._applier.apply(b), attempts=3) is None:
                    log.error("live state unavailable: %d signals of the log's tail wait to be applied", self._resume_to - mark)
                    return
                total += len(batch)
            await self._log.mark_applied(self._resume_to)
            log.warning("applied %d signals logged but not applied before the last stop, in %.2fs",
                        total, time.perf_counter() - started)
        self._marked, self._resume_to = self._resume_to, None

    async def _checkpoint_every(self) -> None:
        while True:
            await asyncio.sleep(self._checkpoint_every_s)
            try:
                if self._resume_to is not None:
                    await self._resume()
                else:
                    await self._checkpoint()
            except BackendUnavailable as exc:
                log.warning("applied mark not moved: %s", exc)

    async def _checkpoint(self) -> None:
        # The position is read first: a signal logged by then was reserved before it was logged and
        # is unapplied until applied, so an idle processor afterwards has applied all of them.
        position = await self._log.last_position()
        if position > self._marked and self._processor.idle:
            await self._log.mark_applied(position)
            self._marked = position

    async def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.cancel()
        await self._processor.stop()
        if not self._replay and self._resume_to is None:
            with contextlib.suppress(BackendUnavailable):
                await self._checkpoint()


def in_process_bus(*, signal_log: SignalLog, features: FeatureStore, catalog: ItemCatalog, monitor: PerformanceMonitor,
                   learners: Learners | None = None, buffer_size: int = 10_000, workers: int = 8,
                   replay: bool = True) -> InProcessSignalBus:
    """The embedded signal path put together: durable log → priority queue → workers → applier."""
    applier = SignalApplier(features=features, catalog=catalog, monitor=monitor, learners=learners)
    processor = RealTimeSignalProcessor(applier=applier, buffer_size=buffer_size, workers=workers, monitor=monitor)
    return InProcessSignalBus(signal_log=signal_log, processor=processor, applier=applier, replay=replay)
