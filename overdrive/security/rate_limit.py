"""Per-credential request budgets: a token bucket per (credential, scope).

A bucket holds up to `burst` tokens and refills at `rate` per second; each request takes one, and
a request that finds none is refused with `RateLimited` (HTTP 429, `Retry-After` = when the next
token comes). Limits are configured per scope (`OVERDRIVE_RATE_LIMITS`); a key may carry its own,
which wins. Buckets live in this process (`MemoryBuckets`), or in Redis where replicas share the
budget (`overdrive.store.redis_rate_limit`).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Protocol

from overdrive.domain.errors import RateLimited
from overdrive.security.principal import Principal

_MAX_BUCKETS = 100_000


class Buckets(Protocol):
    async def take(self, key: str, *, rate: float, burst: float, now: float) -> float:
        """Take one token; 0 when taken, else the seconds until one is available."""


class MemoryBuckets:
    def __init__(self) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    async def take(self, key: str, *, rate: float, burst: float, now: float) -> float:
        tokens, at = self._buckets.pop(key, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > _MAX_BUCKETS:
            self._buckets.popitem(last=False)
        return wait


class RateLimiter:
    def __init__(self, *, limits: Mapping[str, tuple[float, float]], buckets: Buckets) -> None:
        """`limits`: scope -> (requests per second, burst) for every credential."""
        self._limits = dict(limits)
        self._buckets = buckets

    @property
    def active(self) -> bool:
        return bool(self._limits)

    async def check(self, principal: Principal, scope: str) -> None:
        limit = principal.rate or self._limits.get(scope)
        if limit is None:
            return
        rate, burst = limit
        wait = await self._buckets.take(f"{principal.id}|{scope}", rate=rate, burst=burst, now=time.time())
        if wait > 0:
            raise RateLimited(f"rate limit of {principal.id} for {scope} reached ({rate:g}/s, burst {burst:g})",
                              retry_after_s=max(1.0, math.ceil(wait)))
