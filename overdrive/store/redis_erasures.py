"""The erasure list in Redis, shared by every replica and worker: `P{privacy}:erased`, a hash of
user-id digest -> time of erasure (epoch seconds)."""

from __future__ import annotations

from overdrive.domain.privacy import user_digest
from overdrive.store.redis_conn import RedisConnection
from overdrive.store.redis_feature_store import check_prefix
from overdrive.store.redis_scripts import MAX_SET_SCRIPT


class RedisErasureList:
    def __init__(self, *, connection: RedisConnection, prefix: str = "overdrive:") -> None:
        self._r = connection
        self._key = f"{check_prefix(prefix)}{{privacy}}:erased"
        self._sha = connection.script(MAX_SET_SCRIPT)

    async def add(self, user_id: str, *, at: float) -> None:
        await self._r.execute([["EVALSHA", self._sha, 1, self._key, user_digest(user_id), at, 0]])

    async def snapshot(self) -> dict[str, float]:
        (raw,) = await self._r.execute([["HGETALL", self._key]])
        return {k.decode(): float(v) for k, v in raw.items()}
