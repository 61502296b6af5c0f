"""Experiments in Redis, shared by every replica: definitions in one hash, each experiment's
exposures in a stream, and per user the stream entries that are theirs (for export and erasure).

    P{exp}:defs              experiment id -> definition JSON
    P{exp:<id>}:x            the experiment's exposures (a stream; entry field `r`, the record)
    P{xu:<user>}             the user's exposures: "<experiment id> <entry id>" (a set)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import orjson

from overdrive.store.redis_conn import RedisConnection, unavailable
from overdrive.store.redis_feature_store import check_prefix, escape


class RedisExperimentStore:
    def __init__(self, *, connection: RedisConnection, prefix: str = "overdrive:") -> None:
        self._r = connection
        self._p = check_prefix(prefix)
        self._defs = f"{self._p}{{exp}}:defs"

    def _stream(self, experiment_id: str) -> str:
        return f"{self._p}{{exp:{escape(experiment_id)}}}:x"

    def _user(self, user_id: str) -> str:
        return f"{self._p}{{xu:{escape(user_id)}}}"

    async def put(self, experiment_id: str, definition: dict) -> None:
        await self._r.execute([["HSET", self._defs, experiment_id, orjson.dumps(definition)]])

    async def all(self) -> list[dict]:
        (raw,) = await self._r.execute([["HGETALL", self._defs]])
        return [orjson.loads(v) for _, v in sorted(raw.items())]

    async def delete(self, experiment_id: str) -> bool:
        removed, _ = await self._r.execute([["HDEL", self._defs, experiment_id], ["DEL", self._stream(experiment_id)]])
        return bool(removed)

    async def log_exposures(self, exposures: Sequence[dict]) -> None:
        ids = await self._r.execute([["XADD", self._stream(e["experiment"]), "*", "r", orjson.dumps(e)] for e in exposures])
        await self._r.execute([["SADD", self._user(e["user_id"]), f"{e['experiment']} {_text(i)}"]
                               for e, i in zip(exposures, ids, strict=True)])

    def exposures(self, experiment_id: str, *, batch_size: int = 10_000) -> Iterator[list[dict]]:
        lower = "-"
        while True:
            with unavailable():
                entries = self._r.sync.xrange(self._stream(experiment_id), lower, "+", count=batch_size)
            if not entries:
                return
            lower = f"({_text(entries[-1][0])}"
            yield [orjson.loads(body[b"r"]) for _, body in entries]

    async def user_exposures(self, user_id: str) -> list[dict]:
        refs = await self._refs(user_id)
        if not refs:
            return []
        found = await self._r.execute([["XRANGE", self._stream(exp), entry, entry] for exp, entry in refs])
        records = [orjson.loads(entries[0][1][b"r"]) for entries in found if entries]
        return sorted(records, key=lambda r: r["at"])

    async def forget_user(self, user_id: str) -> int:
        refs = await self._refs(user_id)
        await self._r.execute([*(["XDEL", self._stream(exp), entry] for exp, entry in refs), ["DEL", self._user(user_id)]])
        return len(refs)

    async def _refs(self, user_id: str) -> list[tuple[str, str]]:
        (members,) = await self._r.execute([["SMEMBERS", self._user(user_id)]])
        return [tuple(_text(m).rsplit(" ", 1)) for m in sorted(members)]  # type: ignore[misc]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
