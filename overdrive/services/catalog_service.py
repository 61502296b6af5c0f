"""Catalog use cases: durable item writes and lookups."""

from __future__ import annotations

from collections.abc import Sequence

from overdrive.domain.errors import NotFound
from overdrive.domain.types import Item
from overdrive.store.protocols import FeatureStore, ItemCatalog


class CatalogService:
    def __init__(self, *, catalog: ItemCatalog, features: FeatureStore) -> None:
        self._catalog = catalog
        self._features = features

    async def put(self, items: Sequence[Item]) -> None:
        await self._catalog.put(items)

    async def get(self, item_id: str) -> Item:
        found = await self._catalog.get([item_id])
        if item_id not in found:
            raise NotFound(f"item {item_id!r} not found")
        return found[item_id]

    async def delete(self, item_id: str) -> None:
        if not await self._catalog.delete(item_id):
            raise NotFound(f"item {item_id!r} not found")
        await self._features.forget_item(item_id)

    async def count(self) -> int:
        return await self._catalog.count()
