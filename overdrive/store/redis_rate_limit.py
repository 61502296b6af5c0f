"""Token buckets in Redis, so every replica spends one budget per credential: one Lua call a
request, the bucket a hash `P{rl:<credential|scope>}` of tokens and the time they were counted."""

from __future__ import annotations

from overdrive.store.redis_conn import RedisConnection
from overdrive.store.redis_feature_store import check_prefix, escape

# KEYS[1] bucket; ARGV: rate, burst, now. Returns 0 when a token was taken, else seconds to wait.
_TAKE_SCRIPT = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""


class RedisBuckets:
    def __init__(self, *, connection: RedisConnection, prefix: str = "overdrive:") -> None:
        self._r = connection
        self._p = check_prefix(prefix)
        self._sha = connection.script(_TAKE_SCRIPT)

    async def take(self, key: str, *, rate: float, burst: float, now: float) -> float:
        (wait,) = await self._r.execute([["EVALSHA", self._sha, 1, f"{self._p}{{rl:{escape(key)}}}", rate, burst, now]])
        return float(wait)
