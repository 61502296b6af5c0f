"""When and how long to wait before trying a request again.

A call is tried again when the service refuses it for now (429, 503: nothing was written), and
when the connection fails before the request could have reached it (refused, connect timeout,
no pooled connection free). Where repeating a call cannot change the outcome — reads, deletes,
item writes that replace, signals carrying their `signal_id` — it is also tried again after a
lost answer (reset, read timeout, 502/504 from a proxy). Only creating an experiment is not
repeated then: a second try could create a second one.

The wait honours `Retry-After` (at least what the service asks, plus up to `base_s` of jitter so
that clients refused together do not return together); without one it doubles from `base_s` up
to `max_s`, each wait drawn from its upper `jitter` share (0.5: between half and all of it).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import httpx

RETRY_ALWAYS = frozenset({429, 503})
RETRY_IF_IDEMPOTENT = frozenset({502, 504})
# Raised before a byte of the request left: the service cannot have acted on it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class Retry:
    """How hard to try one call: up to `attempts` retries after the first try."""

    attempts: int = 8
    base_s: float = 0.25
    max_s: float = 10.0
    jitter: float = 0.5
    max_retry_after_s: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    async_sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 0 or self.base_s < 0 or self.max_s < self.base_s or not 0.0 <= self.jitter <= 1.0:
            raise ValueError("need attempts >= 0, 0 <= base_s <= max_s and 0 <= jitter <= 1")

    @classmethod
    def never(cls) -> Retry:
        """One try, no retries."""
        return cls(attempts=0)

    def but(self, **changes: object) -> Retry:
        """A copy with some fields changed, e.g. `retry.but(attempts=2)`."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def status_retryable(self, status: int, *, idempotent: bool) -> bool:
        return status in RETRY_ALWAYS or (idempotent and status in RETRY_IF_IDEMPOTENT)

    def transport_retryable(self, exc: httpx.TransportError, *, idempotent: bool) -> bool:
        return idempotent or isinstance(exc, _NOT_SENT)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt + 1` (`attempt` counts from 0)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s) + self.rng.uniform(0.0, self.base_s) * (self.jitter > 0)
        backoff = min(self.base_s * 2.0 ** attempt, self.max_s)
        return backoff * (1.0 - self.jitter * self.rng.random())
