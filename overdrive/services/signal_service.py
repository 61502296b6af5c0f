"""Signal ingest: durable append first, then fold into live features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from overdrive.domain.types import Signal
from overdrive.store.protocols import FeatureStore, ItemCatalog, SignalLog


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicates: int


class SignalService:
    def __init__(self, *, log: SignalLog, catalog: ItemCatalog, features: FeatureStore) -> None:
        self._log = log
        self._catalog = catalog
        self._features = features

    async def ingest(self, signals: Sequence[Signal]) -> IngestResult:
        """Acknowledge only after the log has the signals on disk; then update live state.

        A crash between the two steps loses nothing: start-up replays the log into the features.
        """
        fresh = await self._log.append(signals)
        if fresh:
            items = await self._catalog.get([s.content_id for s in fresh])
            await self._features.record(fresh, items)
        return IngestResult(accepted=len(fresh), duplicates=len(signals) - len(fresh))

    async def replay(self) -> int:
        """Rebuild live features from the whole log (embedded start-up). Returns signals replayed."""
        total = 0
        for batch in self._log.scan():
            items = await self._catalog.get([s.content_id for s in batch])
            await self._features.record(batch, items)
            total += len(batch)
        return total
