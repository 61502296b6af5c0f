"""Catalog use cases: durable item writes and lookups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from overdrive.domain.errors import NotFound
from overdrive.domain.types import Item
from overdrive.store.protocols import FeatureStore, ItemCatalog


class ContentIndexer(Protocol):
    async def submit(self, items: Sequence[Item]) -> None: ...

    async def forget(self, item_id: str) -> None: ...


class ItemListener(Protocol):
    def add_items(self, items: Sequence[Item]) -> None: ...


class CatalogService:
    def __init__(self, *, catalog: ItemCatalog, features: FeatureStore, content: ContentIndexer | None = None,
                 listeners: Sequence[ItemListener] = ()) -> None:
        """`listeners` are told of every written item (the served models, which score items
        they were not fitted on from their content); they must not block."""
        self._catalog = catalog
        self._features = features
        self._content = content
        self._listeners = list(listeners)

    async def put(self, items: Sequence[Item]) -> None:
        """Durable first; content features and the models' item vectors follow in the background
        (never awaited here)."""
        await self._catalog.put(items)
        if self._content is not None:
            await self._content.submit(items)
        for listener in self._listeners:
            listener.add_items(items)

    async def get(self, item_id: str) -> Item:
        found = await self._catalog.get([item_id])
        if item_id not in found:
            raise NotFound(f"item {item_id!r} not found")
        return found[item_id]

    async def delete(self, item_id: str) -> None:
        if not await self._catalog.delete(item_id):
            raise NotFound(f"item {item_id!r} not found")
        await self._features.forget_item(item_id)
        if self._content is not None:
            await self._content.forget(item_id)

    async def count(self) -> int:
        return await self._catalog.count()
