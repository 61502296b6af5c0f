"""Item and author figures from live state: windowed activity, engagement, what is trending."""

from __future__ import annotations

import time

from overdrive.store.protocols import FeatureStore, ItemCatalog


class ItemAnalytics:
    def __init__(self, *, features: FeatureStore, catalog: ItemCatalog) -> None:
        self._features = features
        self._catalog = catalog

    async def item(self, item_id: str) -> dict:
        now = time.time()
        stored = (await self._catalog.get([item_id])).get(item_id)
        engagement = await self._features.item_engagement([item_id], now=now)
        velocity = await self._features.item_velocity([item_id], now=now)
        author = stored.author_id if stored else None
        return {
            "item_id": item_id,
            "in_catalog": stored is not None,
            "engagement": round(engagement.get(item_id, 0.0), 6),
            "velocity": round(velocity.get(item_id, 1.0), 6),
            "windows": await self._features.windows("item", item_id, now=now),
            "author": None if author is None else {
                "author_id": author,
                "windows": await self._features.windows("author", author, now=now),
            },
        }

    async def trending(self, limit: int) -> dict:
        now = time.time()
        ranked = await self._features.trending(limit, now=now)
        return {
            "as_of": now,
            "items": [{"id": item_id, "velocity": round(v, 6)} for item_id, v in ranked],
        }
