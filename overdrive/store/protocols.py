"""The storage seams. Each has one contract suite in tests/contract run over every backend."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from overdrive.domain.types import Item, Signal


class SignalLog(Protocol):
    """Append-only record of acknowledged signals: the source of truth everything replays from."""

    async def append(self, signals: Sequence[Signal]) -> list[Signal]:
        """Store all signals durably in one transaction; return those that were new.

        A signal whose `signal_id` is already stored (or repeats within the call) is dropped, so
        clients may retry safely. When this returns, the new signals survive a crash.
        """

    async def user_signal_counts(self, user_id: str) -> dict[str, int]:
        """All-time count per signal type for one user."""

    async def user_signals(self, user_id: str, *, limit: int, since: float | None = None) -> list[Signal]:
        """A user's signals, newest first, optionally only those at or after `since`."""

    async def count(self) -> int:
        """How many signals are stored."""

    def scan(self, *, batch_size: int = 10_000) -> Iterator[list[Signal]]:
        """Every stored signal in append order, in batches (for replay and training)."""

    async def ping(self) -> None:
        """Raise `BackendUnavailable` if the log cannot serve."""

    async def close(self) -> None: ...


class ItemCatalog(Protocol):
    """The items that can be ranked, keyed by id."""

    async def put(self, items: Sequence[Item]) -> None:
        """Insert or replace all items durably in one transaction."""

    async def get(self, item_ids: Sequence[str]) -> dict[str, Item]:
        """The stored items among `item_ids` (missing ids are absent from the result)."""

    async def delete(self, item_id: str) -> bool:
        """Remove one item; False if it was not there."""

    async def newest(self, limit: int) -> list[str]:
        """Ids of the most recently created items, newest first."""

    async def count(self) -> int: ...

    def scan(self, *, batch_size: int = 10_000) -> Iterator[list[Item]]:
        """Every stored item, in batches."""

    async def close(self) -> None: ...


class FeatureStore(Protocol):
    """Live state derived from signals, read on every ranking: decayed engagement and interests."""

    async def record(self, signals: Sequence[Signal], items: Mapping[str, Item]) -> None:
        """Fold acknowledged signals in; `items` holds the catalog entries they refer to."""

    async def forget_item(self, item_id: str) -> None:
        """Drop an item's engagement (it left the catalog)."""

    async def item_engagement(self, item_ids: Sequence[str], *, now: float) -> dict[str, float]:
        """Time-decayed weighted engagement per item (absent: none recorded)."""

    async def user_interests(self, user_id: str, *, now: float) -> dict[str, float]:
        """Time-decayed affinity per item feature (`tag:x`, `author:y`, `type:z`); may be negative."""

    async def top_engaged(self, limit: int, *, now: float) -> list[str]:
        """Item ids with the highest decayed engagement, best first."""
