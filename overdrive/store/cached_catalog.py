"""An ItemCatalog that keeps recently read items in process memory, in front of another one.

Every ranking reads its candidates' catalog entries (100 or more a request), which would be a
SQLite query or a Redis round trip each time. Writes made through this instance update the cache
at once. `ttl_s` bounds how long an entry is served without re-reading it: None on the embedded
store (this process is its only writer), a few seconds where other replicas write to a shared
catalog, which is then how stale an item edited elsewhere may be.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence

from overdrive.domain.types import Item
from overdrive.store.protocols import ItemCatalog


class CachedItemCatalog:
    def __init__(self, inner: ItemCatalog, *, capacity: int = 200_000, ttl_s: float | None = None) -> None:
        self._inner = inner
        self._capacity = capacity
        self._ttl_s = ttl_s
        self._cache: OrderedDict[str, tuple[Item, float]] = OrderedDict()
        self._writes = 0  # a read that overlapped a write must not cache what it read

    async def get(self, item_ids: Sequence[str]) -> dict[str, Item]:
        oldest = -1.0 if self._ttl_s is None else time.monotonic() - self._ttl_s
        hits = list(zip(item_ids, map(self._cache.get, item_ids)))
        found: dict[str, Item] = {item_id: hit[0] for item_id, hit in hits if hit is not None and hit[1] > oldest}
        missing = [item_id for item_id, hit in hits if hit is None or hit[1] <= oldest] if len(found) < len(hits) else []
        cache = self._cache
        if len(cache) > self._capacity // 2:  # recency matters only once eviction is near
            for item_id in found:
                cache.move_to_end(item_id)
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
            self._cache[item.id] = (item, now)
            self._cache.move_to_end(item.id)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)

    async def put(self, items: Sequence[Item]) -> None:
        self._writes += 1  # before and after: no read overlapping any part of the write caches
        try:
            await self._inner.put(items)
        except BaseException:
            for item in items:  # the store may or may not hold them now: read them again next time
                self._cache.pop(item.id, None)
            raise
        finally:
            self._writes += 1
        self._remember(items)

    async def delete(self, item_id: str) -> bool:
        self._writes += 1
        try:
            return await self._inner.delete(item_id)
        finally:
            self._cache.pop(item_id, None)
            self._writes += 1

    async def newest(self, limit: int) -> list[str]:
        return await self._inner.newest(limit)

    async def count(self) -> int:
        return await self._inner.count()

    def scan(self, *, batch_size: int = 10_000) -> Iterator[list[Item]]:
        return self._inner.scan(batch_size=batch_size)

    async def close(self) -> None:
        await self._inner.close()
