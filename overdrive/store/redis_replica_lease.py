"""At most one API replica on a Redis deployment without Kafka: a lease in Redis.

Without Kafka each replica keeps its own SQLite signal log and retrains on that part alone, so a
second replica on the same Redis prefix would quietly serve models of half the history. The first
replica takes the lease (a key that expires `ttl_s` after its last renewal); another replica's
start is refused with an error that says to use Kafka. The same replica started again (same host
and data folder: the data folder's lock says the old process is gone) takes its lease over at
once instead of waiting for it to expire. A replica that finds its lease taken after all (Redis
lost the key while this one was stalled, and another took it) reports itself unready.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from pathlib import Path

from overdrive.domain.errors import OverdriveError
from overdrive.store.redis_conn import RedisConnection, unavailable

log = logging.getLogger(__name__)

# KEYS[1] the lease; ARGV: this holder's value, ttl in ms, this replica's identity. Returns the
# other replica's value when it holds the lease, else takes (or renews) it and returns false.
_TAKE = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then
  local ok, holder = pcall(cjson.decode, held)
  if not ok or type(holder) ~= 'table' or holder['replica'] ~= ARGV[3] then
    return held
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class ReplicaLeaseHeld(OverdriveError):
    """Another live API replica already serves this Redis prefix without Kafka."""


class RedisReplicaLease:
    def __init__(self, *, connection: RedisConnection, prefix: str, data_dir: Path, ttl_s: float = 15.0) -> None:
        self._connection = connection
        self._prefix, self._key = prefix, f"{prefix}replica-lease"
        self._ttl_ms = int(ttl_s * 1000)
        self._replica = f"{socket.gethostname()}:{data_dir.resolve()}"
        self._value = json.dumps({"replica": self._replica, "pid": os.getpid(), "token": uuid.uuid4().hex})
        self._take_sha = connection.script(_TAKE)
        self._release_sha = connection.script(_RELEASE)
        self._held = False
        self._renewing: asyncio.Task | None = None

    def acquire(self) -> RedisReplicaLease:
        """Take the lease (blocking: at wiring time, before anything else starts)."""
        with unavailable():
            other = self._connection.sync.eval(_TAKE, 1, self._key, self._value, self._ttl_ms, self._replica)
        if other:
            raise ReplicaLeaseHeld(
                f"another API replica ({_describe(other)}) serves this Redis (prefix {self._prefix!r}) "
                "without Kafka, where each replica learns from its own signals alone: run one replica, or set "
                "KAFKA_BOOTSTRAP_SERVERS so that replicas share one signal history (docs/scaling.md)")
        self._held = True
        return self

    async def start(self) -> None:
        self._renewing = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._ttl_ms / 3000.0)
            try:
                other = await self._connection.execute(
                    [["EVALSHA", self._take_sha, 1, self._key, self._value, self._ttl_ms, self._replica]])
            except Exception:  # Redis away: the key may expire meanwhile; the next renewal says
                log.warning("renewing the replica lease failed", exc_info=True)
                continue
            held = not other[0]
            if held != self._held:
                (log.info if held else log.error)(
                    "replica lease %s", "held again" if held else f"taken by another replica ({_describe(other[0])})")
            self._held = held

    async def check(self) -> dict:
        """Health: whether this replica still holds the lease."""
        if not self._held:
            raise ReplicaLeaseHeld("another API replica took this Redis prefix's replica lease")
        return {"replica_lease": self._replica}

    async def release(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
        if self._held:
            await self._connection.execute([["EVALSHA", self._release_sha, 1, self._key, self._value]])
            self._held = False


def _describe(value: bytes | str) -> str:
    try:
        holder = json.loads(value)
        return f"{holder['replica']}, pid {holder['pid']}"
    except (ValueError, KeyError, TypeError):
        return "unknown"
