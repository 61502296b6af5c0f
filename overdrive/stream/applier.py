"""Applying acknowledged signals: the one routine every deployment runs on each batch.

Look up the items the signals name (kept briefly: most signals hit a small hot set) → fold the
signals into live state (`FeatureStore.apply`, which skips ids it has applied before) → tell the
learners (the collaborative model's fold-in, the learned blend's click labels) → record how long
each stage took. The embedded processor's workers and the Kafka worker both run it, and
`until_stored` is the one retry policy that carries either through a live-state outage (a Redis
restart) instead of dropping the batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from overdrive.domain.context import humans
from overdrive.domain.errors import BackendUnavailable
from overdrive.domain.types import Item, Signal
from overdrive.observability.performance import PerformanceMonitor
from overdrive.store.protocols import FeatureStore, ItemCatalog

log = logging.getLogger(__name__)

T = TypeVar("T")
SignalHook = Callable[[list[Signal]], None]

_ITEM_CACHE_TTL_S = 30.0  # a catalog edit reaches interest updates within this long
_ITEM_CACHE_MAX = 200_000
_BACKOFF_FIRST_S, _BACKOFF_MAX_S = 0.05, 2.0


class Learners:
    """Whoever learns from applied signals, each subscribed once by the composition root.

    Every applied batch goes to every subscriber in subscription order, on the caller's thread
    (the event loop, or a Kafka reader's thread: subscribers must be thread-safe). A subscriber
    that raises is logged and counted; the others still get the batch, and it gets the next one.
    """

    def __init__(self) -> None:
        self._hooks: list[SignalHook] = []
        self.failures = 0

    def subscribe(self, hook: SignalHook) -> None:
        self._hooks.append(hook)

    @property
    def subscribed(self) -> bool:
        return bool(self._hooks)

    def notify(self, signals: list[Signal]) -> None:
        for hook in self._hooks:
            try:
                hook(signals)
            except Exception:  # one learner's bug must not stop the others, or the signal path
                self.failures += 1
                log.exception("learner %r failed on %d signals", hook, len(signals))


async def until_stored(step: Callable[[], Awaitable[T]], *, stop: asyncio.Event | None = None,
                       attempts: int | None = None) -> T | None:
    """`step()`, retried while live state is unavailable (backoff doubling from 50 ms to 2 s).

    None when `stop` is set or `attempts` have failed while it still cannot."""
    delay, failed = _BACKOFF_FIRST_S, 0
    while True:
        try:
            return await step()
        except BackendUnavailable as exc:
            failed += 1
            if (stop is not None and stop.is_set()) or (attempts is not None and failed >= attempts):
                log.warning("live state unavailable (%s); giving up for now", exc)
                return None
            log.warning("live state unavailable (%s); retrying in %.2fs (attempt %d)", exc, delay, failed)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX_S)


class SignalApplier:
    def __init__(self, *, features: FeatureStore, catalog: ItemCatalog, monitor: PerformanceMonitor,
                 learners: Learners | None = None) -> None:
        self._features = features
        self._items = _ItemCache(catalog)
        self._monitor = monitor
        self._learners = Learners() if learners is None else learners

    async def apply(self, signals: Sequence[Signal]) -> list[Signal]:
        """Apply one batch and tell the learners; returns the signals applied (repeats skipped).
        Bots' signals stay in the log but teach nothing."""
        signals = humans(signals)
        if not signals:
            return []
        started = time.perf_counter()
        items = await self._items.get({s.content_id for s in signals})
        looked_up = time.perf_counter()
        self._monitor.record_stage("item_lookup", (looked_up - started) * 1000.0, len(signals))
        applied = await self._features.apply(signals, items, now=time.time())
        if applied:
            self._learners.notify(applied)
        self._monitor.record_stage("apply", (time.perf_counter() - looked_up) * 1000.0, len(signals))
        return applied

    async def rebuild(self, batches: Iterable[list[Signal]]) -> int:
        """Fold a whole log into live state (start-up of a deployment whose live state lives in
        process memory); the learners are not told: models train on the log itself."""
        total = 0
        for batch in map(humans, batches):
            items = await self._items.get({s.content_id for s in batch})
            await self._features.apply(batch, items, now=time.time())
            total += len(batch)
        return total


class _ItemCache:
    """Catalog entries the signals name, kept for `_ITEM_CACHE_TTL_S` (absent ones too)."""

    def __init__(self, catalog: ItemCatalog) -> None:
        self._catalog = catalog
        self._entries: dict[str, tuple[float, Item | None]] = {}

    async def get(self, item_ids: set[str]) -> dict[str, Item]:
        now = time.monotonic()
        found: dict[str, Item] = {}
        missing = []
        for item_id in item_ids:
            entry = self._entries.get(item_id)
            if entry is not None and now - entry[0] < _ITEM_CACHE_TTL_S:
                if entry[1] is not None:
                    found[item_id] = entry[1]
            else:
                missing.append(item_id)
        if missing:
            fetched = await self._catalog.get(missing)
            if len(self._entries) + len(missing) > _ITEM_CACHE_MAX:
                self._entries.clear()
            for item_id in missing:
                item = fetched.get(item_id)
                self._entries[item_id] = (now, item)
                if item is not None:
                    found[item_id] = item
        return found
