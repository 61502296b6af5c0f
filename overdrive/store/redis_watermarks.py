"""Read-your-writes across replicas in Kafka mode: produced and applied offsets kept in Redis.

After the broker acks a user's signals, the API raises `P{u:<user>}:wm:<topic>` (partition →
highest offset produced for that user; expires after a day). After a worker has written a batch's
state it raises `P{wm}:applied:<topic>` (partition → highest offset applied). A user is settled
when, on every partition they produced to, applied ≥ produced — whichever replica asks. Both are
max-sets in Lua, so late or repeated writes never move a mark backwards.
"""

from __future__ import annotations

from collections.abc import Mapping

from overdrive.store.redis_conn import RedisConnection
from overdrive.store.redis_feature_store import check_prefix, escape
from overdrive.store.redis_scripts import MAX_SET_SCRIPT

_PRODUCED_TTL_S = 86_400


class RedisWatermarks:
    def __init__(self, *, connection: RedisConnection, topic: str, prefix: str = "overdrive:") -> None:
        self._r = connection
        self._p = check_prefix(prefix)
        self._topic = escape(topic)
        self._applied = f"{self._p}{{wm}}:applied:{self._topic}"
        self._sha = connection.script(MAX_SET_SCRIPT)

    def _produced(self, user_id: str) -> str:
        return f"{self._p}{{u:{escape(user_id)}}}:wm:{self._topic}"

    async def record_produced(self, offsets: Mapping[str, Mapping[int, int]]) -> None:
        """user → partition → highest offset the broker acknowledged."""
        await self._r.execute([
            ["EVALSHA", self._sha, 1, self._produced(user), *_pairs(parts), _PRODUCED_TTL_S]
            for user, parts in offsets.items()
        ])

    async def record_applied(self, offsets: Mapping[int, int]) -> None:
        """partition → highest offset whose state is written."""
        if offsets:
            await self._r.execute([["EVALSHA", self._sha, 1, self._applied, *_pairs(offsets), 0]])

    async def settled(self, user_id: str) -> bool:
        produced, applied = await self._r.execute([["HGETALL", self._produced(user_id)], ["HGETALL", self._applied]])
        return all(int(applied.get(p, -1)) >= int(off) for p, off in produced.items())


def _pairs(offsets: Mapping[int, int]) -> list[int]:
    return [x for p, off in offsets.items() for x in (p, off)]
