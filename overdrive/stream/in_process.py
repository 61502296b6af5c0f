"""Embedded SignalBus: the SQLite log is the durable medium; the in-process processor consumes."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from overdrive.domain.types import Signal
from overdrive.observability.performance import PerformanceMonitor
from overdrive.store.protocols import FeatureStore, ItemCatalog, SignalLog
from overdrive.stream.applier import Learners, SignalApplier
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
    ) -> None:
        """`replay=False` when the live state outlives the process (Redis): nothing to rebuild."""
        self._replay = replay
        self._log = signal_log
        self._processor = processor
        self._applier = applier

    async def publish(self, signals: Sequence[Signal]) -> list[Signal]:
        with self._processor.reserve(len(signals)):
            fresh = await self._log.append(signals)
            self._processor.submit(fresh)
        return fresh

    async def settled(self, user_id: str, *, timeout_s: float) -> bool:
        return await self._processor.settled(user_id, timeout_s=timeout_s)

    async def start(self) -> None:
        """Rebuild live state from the whole log (it lives in memory), then start processing."""
        if self._replay:
            started = time.perf_counter()
            total = await self._applier.rebuild(self._log.scan())
            log.info("replayed %d signals into live state in %.2fs", total, time.perf_counter() - started)
        await self._processor.start()

    async def close(self) -> None:
        await self._processor.stop()


def in_process_bus(*, signal_log: SignalLog, features: FeatureStore, catalog: ItemCatalog, monitor: PerformanceMonitor,
                   learners: Learners | None = None, buffer_size: int = 10_000, workers: int = 8,
                   replay: bool = True) -> InProcessSignalBus:
    """The embedded signal path put together: durable log → priority queue → workers → applier."""
    applier = SignalApplier(features=features, catalog=catalog, monitor=monitor, learners=learners)
    processor = RealTimeSignalProcessor(applier=applier, buffer_size=buffer_size, workers=workers, monitor=monitor)
    return InProcessSignalBus(signal_log=signal_log, processor=processor, applier=applier, replay=replay)
