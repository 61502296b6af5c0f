"""Signal ingest: acknowledged only once the bus has made the signals durable."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from overdrive.domain.types import Signal
from overdrive.stream.protocols import SignalBus


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicates: int


class SignalService:
    def __init__(self, *, bus: SignalBus) -> None:
        self._bus = bus

    async def ingest(self, signals: Sequence[Signal]) -> IngestResult:
        accepted = await self._bus.publish(signals)
        return IngestResult(accepted=len(accepted), duplicates=len(signals) - len(accepted))
