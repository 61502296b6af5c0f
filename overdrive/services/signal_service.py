"""Signal ingest: acknowledged only once the bus has made the signals durable."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from overdrive.domain.types import Signal
from overdrive.store.protocols import SignalLog
from overdrive.stream.protocols import SignalBus


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicates: int


class SignalService:
    def __init__(self, *, bus: SignalBus, signal_log: SignalLog | None = None) -> None:
        """`signal_log`: the durable log, where this deployment keeps one (with Kafka the topic is the log)."""
        self._bus = bus
        self._log = signal_log

    async def ingest(self, signals: Sequence[Signal]) -> IngestResult:
        accepted = await self._bus.publish(signals)
        return IngestResult(accepted=len(accepted), duplicates=len(signals) - len(accepted))

    async def logged(self) -> int | None:
        """How many signals the durable log holds (None: this deployment keeps none of its own)."""
        return None if self._log is None else await self._log.count()
