"""An ItemCatalog that keeps recently read items in process memory, in front of another one.

Every ranking reads its candidates' catalog entries (100 or more a request), which would be a
SQLite query or a Redis round trip each time. Writes made through this instance update the cache
at once. `ttl_s` bounds how long an entry is served without re-reading it: None on the embedded
store (this process is its only writer), a few seconds where other replicas write to a shared
catalog, which is then how stale an item edited elsewhere may be.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from itertools import compress

import numpy as np

from overdrive.domain.item_numbers import NO_NUMBER, ItemColumn, item_numbers
from overdrive.domain.types import Item
from overdrive.store.protocols import ItemCatalog


class CachedItemCatalog:
    """Cached items are found by item number (`item_numbers`): a ranking's thousands of candidates
    cost one lookup each, shared with the other components, then gathers. `_recency` keeps the
    order for eviction."""

    def __init__(self, inner: ItemCatalog, *, capacity: int = 200_000, ttl_s: float | None = None) -> None:
        self._inner = inner
        self._capacity = capacity
        self._ttl_s = ttl_s
        self._items: list[Item | None] = []  # by item number
        self._read_at = ItemColumn(-math.inf)  # by item number: when it was cached (monotonic)
        self._recency: OrderedDict[str, None] = OrderedDict()  # cached ids, least recently used first
        self._writes = 0  # a read that overlapped a write must not cache what it read

    async def get(self, item_ids: Sequence[str]) -> dict[str, Item]:
        oldest = -1.0 if self._ttl_s is None else time.monotonic() - self._ttl_s
        found_n = item_numbers.of(item_ids)
        fresh = self._read_at.gather(found_n) > oldest
        if fresh.all():
            found = dict(zip(item_ids, map(self._items.__getitem__, found_n.tolist())))
            missing = []
        else:
            hits = np.flatnonzero(fresh).tolist()
            found = dict(zip(map(item_ids.__getitem__, hits), map(self._items.__getitem__, found_n[hits].tolist())))
            missing = list(compress(item_ids, ~fresh))
        if len(self._recency) > self._capacity // 2:  # recency matters only once eviction is near
            for item_id in found:
                self._recency.move_to_end(item_id)
        if missing:
            writes = self._writes
            loaded = await self._inner.get(missing)
            found.update(loaded)
            if writes == self._writes:
                self._remember(loaded.values())
        return found

    def _remember(self, items) -> None:  # noqa: ANN001
        now = time.monotonic()
        for item in items:
            number = item_numbers.number(item.id)
            if number >= len(self._items):
                self._items.extend([None] * (number + 1024 - len(self._items)))
            self._items[number] = item
            self._read_at[number] = now
            self._recency[item.id] = None
            self._recency.move_to_end(item.id)
        while len(self._recency) > self._capacity:
            self._forget(self._recency.popitem(last=False)[0])

    def _forget(self, item_id: str) -> None:
        self._recency.pop(item_id, None)
        if (number := item_numbers.get(item_id)) != NO_NUMBER and number < len(self._items):
            self._items[number] = None
            self._read_at[number] = -math.inf

    async def put(self, items: Sequence[Item]) -> None:
        self._writes += 1  # before and after: no read overlapping any part of the write caches
        try:
            await self._inner.put(items)
        except BaseException:
            for item in items:  # the store may or may not hold them now: read them again next time
                self._forget(item.id)
            raise
        finally:
            self._writes += 1
        self._remember(items)

    async def delete(self, item_id: str) -> bool:
        self._writes += 1
        try:
            return await self._inner.delete(item_id)
        finally:
            self._forget(item_id)
            self._writes += 1

    async def newest(self, limit: int) -> list[str]:
        return await self._inner.newest(limit)

    async def count(self) -> int:
        return await self._inner.count()

    def scan(self, *, batch_size: int = 10_000) -> Iterator[list[Item]]:
        return self._inner.scan(batch_size=batch_size)

    async def close(self) -> None:
        await self._inner.close()
