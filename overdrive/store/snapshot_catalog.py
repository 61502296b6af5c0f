"""An ItemCatalog over items held in memory, as the catalog stood at one moment: items created
after it do not exist yet. A replay of history (`history_blend`) ranks against one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from overdrive.domain.types import Item


class SnapshotCatalog:
    def __init__(self, items: Mapping[str, Item], *, at: float) -> None:
        self._items = {i: item for i, item in items.items() if item.created_at is None or item.created_at <= at}
        dated = sorted((item.created_at, item.id) for item in self._items.values() if item.created_at is not None)
        undated = [item.id for item in self._items.values() if item.created_at is None]
        self._newest = [item_id for _, item_id in reversed(dated)] + undated  # as the stores order them

    async def put(self, items: Sequence[Item]) -> None:
        raise TypeError("a catalog snapshot is read-only")

    async def get(self, item_ids: Sequence[str]) -> dict[str, Item]:
        items = self._items
        return {i: items[i] for i in item_ids if i in items}

    async def delete(self, item_id: str) -> bool:
        raise TypeError("a catalog snapshot is read-only")

    async def newest(self, limit: int) -> list[str]:
        return self._newest[:limit]

    async def count(self) -> int:
        return len(self._items)

    def scan(self, *, batch_size: int = 10_000) -> Iterator[list[Item]]:
        items = list(self._items.values())
        for start in range(0, len(items), batch_size):
            yield items[start:start + batch_size]

    async def close(self) -> None:
        return None
