"""ItemCatalog in Redis, for scaled mode: every replica and worker reads the same catalog.

    P{c:<id>}:item   the item, one orjson blob (ids %-escaped inside the hash tag)
    P{cat}:new       id → created_at (undated: -inf, so never first) — `newest`
    P{cat}:ids       id → 0, ordered by id — `count` and a stable `scan` cursor

Items spread over a Cluster by id; the two indexes share one slot. On standalone Redis a `put`
or `delete` is one MULTI/EXEC transaction; on a Cluster it is one pipeline (blobs first, then
the indexes), so a crash mid-`put` can leave an item readable by id but not yet listed — the
client's retry completes it. How durable the catalog is is the operator's Redis persistence
setting (AOF `appendfsync everysec` or `always`); Overdrive does not change it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any


from overdrive.domain.codec import decode_item, encode_item
from overdrive.domain.types import Item
from overdrive.store.redis_conn import RedisConnection, unavailable
from overdrive.store.redis_feature_store import check_prefix, escape

_CHUNK = 1000


class RedisItemCatalog:
    def __init__(self, *, connection: RedisConnection, prefix: str = "overdrive:") -> None:
        self._r = connection
        self._p = check_prefix(prefix)
        self._new = f"{self._p}{{cat}}:new"
        self._ids = f"{self._p}{{cat}}:ids"

    def _key(self, item_id: str) -> str:
        return f"{self._p}{{c:{escape(item_id)}}}:item"

    async def put(self, items: Sequence[Item]) -> None:
        last = {i.id: i for i in items}  # the same id twice in one call: the last one wins
        if not last:
            return
        blobs = [["SET", self._key(i.id), encode_item(i)] for i in last.values()]
        index = [
            ["ZADD", self._new, *(x for i in last.values() for x in ("-inf" if i.created_at is None else repr(i.created_at), i.id))],
            ["ZADD", self._ids, *(x for i in last for x in (0, i))],
        ]
        await self._r.execute(blobs + index, transaction=True)

    async def get(self, item_ids: Sequence[str]) -> dict[str, Item]:
        ids = list(dict.fromkeys(item_ids))
        found: dict[str, Item] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            keys = [self._key(i) for i in chunk]
            if self._r.cluster:
                with unavailable():
                    blobs = await self._r.client.mget_nonatomic(keys)
            else:
                (blobs,) = await self._r.execute([["MGET", *keys]])
            found.update((i, decode_item(b)) for i, b in zip(chunk, blobs, strict=True) if b is not None)
        return found

    async def delete(self, item_id: str) -> bool:
        removed, _, _ = await self._r.execute(
            [["DEL", self._key(item_id)], ["ZREM", self._new, item_id], ["ZREM", self._ids, item_id]],
            transaction=True,
        )
        return bool(removed)

    async def newest(self, limit: int) -> list[str]:
        if limit <= 0:
            return []
        (ids,) = await self._r.execute([["ZREVRANGE", self._new, 0, limit - 1]])
        return [i.decode() for i in ids]

    async def count(self) -> int:
        (n,) = await self._r.execute([["ZCARD", self._ids]])
        return int(n)

    def scan(self, *, batch_size: int = 10_000) -> Iterator[list[Item]]:
        """Every item in id order; blocking (like the SQLite catalog's), for offline jobs."""
        sync: Any = self._r.sync
        after = b"-"
        while True:
            with unavailable():
                ids = sync.zrangebylex(self._ids, after, b"+", start=0, num=batch_size)
                if not ids:
                    return
                keys = [self._key(i.decode()) for i in ids]
                blobs = sync.mget_nonatomic(keys) if self._r.cluster else sync.mget(keys)
            after = b"(" + ids[-1]
            batch = [decode_item(b) for b in blobs if b is not None]
            if batch:
                yield batch

    async def close(self) -> None:
        """The connection is shared and closed by its owner (wiring, or the test factory)."""
