"""Signal ingest: acknowledged only once the bus has made the signals durable."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from overdrive.domain.types import Signal
from overdrive.store.protocols import SignalHistory
from overdrive.stream.protocols import SignalBus


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicates: int


class SignalService:
    def __init__(self, *, bus: SignalBus, signal_log: SignalHistory | None = None, count_ttl_s: float = 0.0) -> None:
        """`signal_log`: where acknowledged signals are kept — this deployment's log, or with Kafka the
        topic, whose count asks the broker for every partition's bounds: reused for `count_ttl_s`."""
        self._bus = bus
        self._log = signal_log
        self._count_ttl_s = count_ttl_s
        self._counted: tuple[float, int] | None = None

    async def ingest(self, signals: Sequence[Signal]) -> IngestResult:
        accepted = await self._bus.publish(signals)
        return IngestResult(accepted=len(accepted), duplicates=len(signals) - len(accepted))

    async def logged(self) -> int | None:
        """How many signals the durable log holds (with Kafka: the topic retains, repeats included).
        None where nothing keeps them."""
        if self._log is None:
            return None
        now = time.monotonic()
        if self._counted is None or now - self._counted[0] >= self._count_ttl_s:
            self._counted = (now, await self._log.count())
        return self._counted[1]
