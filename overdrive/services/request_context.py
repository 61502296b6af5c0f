"""A ranking's context: the key its context profiles are read under (`<device class>|<daypart>`),
and everyone's profiles for that key.

What a request does not say is filled from the user's habits: its daypart from their learnt time
zone (the most frequent), its device from the device they use most at that daypart. The habits are
looked up once per user and kept for `ttl_s` (a user without any, `ttl_s / 20`: they may be
making some now), so a ranking seldom costs an extra read. Everyone's profiles (the context's
prior and the all-context baseline) change slowly and may be large: read once per key every
`prior_ttl_s`, not per ranking.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from overdrive.domain.context import Context, context_key, zone_context
from overdrive.store.protocols import FeatureStore


@dataclass(frozen=True, slots=True)
class _Habits:
    zone: Context | None
    contexts: dict[str, float]  # "<device class>|<daypart>" -> how much the user did there

    def device_at(self, part: str | None) -> str | None:
        """The device class the user uses most at this daypart."""
        at = {key.split("|")[0]: mass for key, mass in self.contexts.items() if key.split("|")[1] == (part or "-")}
        return max(at, key=at.__getitem__) if at else None


class RequestContexts:
    def __init__(self, features: FeatureStore, *, ttl_s: float = 600.0, max_users: int = 100_000,
                 prior_ttl_s: float = 10.0) -> None:
        self._features = features
        self._ttl_s = ttl_s
        self._max_users = max_users
        self._habits: dict[str, tuple[_Habits, float]] = {}
        self._prior_ttl_s = prior_ttl_s
        self._priors: dict[str, tuple[tuple[dict[str, float], dict[str, float]], float]] = {}

    async def prior(self, key: str, now: float) -> tuple[dict[str, float], dict[str, float]]:
        """Everyone's interests in the context `key` and in every context together."""
        cached = self._priors.get(key)
        clock = time.monotonic()
        if cached is None or cached[1] <= clock:
            cached = self._priors[key] = (await self._features.context_prior(key, now=now), clock + self._prior_ttl_s)
        return cached[0]

    async def key(self, user_id: str, context: Context | None, now: float) -> str:
        context = context or Context()
        device, part = context.device_class, context.daypart(now)
        if device is None or part is None:
            habits = await self._of(user_id, now)
            if part is None and habits.zone is not None:
                part = habits.zone.daypart(now)
            if device is None:
                device = habits.device_at(part)
        return context_key(device, part)

    async def _of(self, user_id: str, now: float) -> _Habits:
        cached = self._habits.get(user_id)
        clock = time.monotonic()
        if cached is not None and cached[1] > clock:
            return cached[0]
        model = await self._features.user_model(user_id, now=now)
        zones = model.timezones
        habits = _Habits(zone=zone_context(max(zones, key=zones.__getitem__)) if zones else None,
                         contexts={key: sum(map(abs, profile.values())) for key, profile in model.contexts.items()})
        if len(self._habits) >= self._max_users:
            self._habits.pop(next(iter(self._habits)))  # the oldest entry
        self._habits[user_id] = (habits, clock + (self._ttl_s if habits.contexts or habits.zone else self._ttl_s / 20))
        return habits
