"""Embedded SignalBus: the SQLite log is the durable medium; the in-process processor consumes."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from overdrive.analytics.real_time_signals import RealTimeSignalProcessor
from overdrive.domain.types import Signal
from overdrive.store.protocols import FeatureStore, ItemCatalog, SignalLog

log = logging.getLogger(__name__)


class InProcessSignalBus:
    def __init__(
        self,
        *,
        signal_log: SignalLog,
        processor: RealTimeSignalProcessor,
        features: FeatureStore,
        catalog: ItemCatalog,
        replay: bool = True,
    ) -> None:
        """`replay=False` when the live state outlives the process (Redis): nothing to rebuild."""
        self._replay = replay
        self._log = signal_log
        self._processor = processor
        self._features = features
        self._catalog = catalog

    async def publish(self, signals: Sequence[Signal]) -> list[Signal]:
        with self._processor.reserve(len(signals)):
            fresh = await self._log.append(signals)
            self._processor.submit(fresh)
        return fresh

    async def settled(self, user_id: str, *, timeout_s: float) -> bool:
        return await self._processor.settled(user_id, timeout_s=timeout_s)

    async def start(self) -> None:
        """Rebuild live state from the whole log (it lives in memory), then start processing."""
        if not self._replay:
            await self._processor.start()
            return
        started, total = time.perf_counter(), 0
        for batch in self._log.scan():
            items = await self._catalog.get([s.content_id for s in batch])
            await self._features.apply(batch, items, now=time.time())
            total += len(batch)
        log.info("replayed %d signals into live state in %.2fs", total, time.perf_counter() - started)
        await self._processor.start()

    async def close(self) -> None:
        await self._processor.stop()
