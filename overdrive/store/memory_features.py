"""FeatureStore held in process memory; the embedded default rebuilds it from the SignalLog."""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

from overdrive.domain.decay import DecayedSum, decay_rate
from overdrive.domain.types import Item, Signal
from overdrive.domain.weighting import SignalWeighting

# The most-engaged list may lag new signals by this much; it is a candidate source, not a score.
_TOP_CACHE_SECONDS = 2.0


class MemoryFeatureStore:
    def __init__(
        self,
        *,
        weighting: SignalWeighting,
        engagement_half_life_s: float,
        interest_half_life_s: float,
    ) -> None:
        self._weighting = weighting
        self._eng_rate = decay_rate(engagement_half_life_s)
        self._int_rate = decay_rate(interest_half_life_s)
        self._engagement: dict[str, DecayedSum] = defaultdict(DecayedSum)
        self._interests: dict[str, dict[str, DecayedSum]] = defaultdict(lambda: defaultdict(DecayedSum))
        self._top_cache: tuple[float, int, list[str]] = (-math.inf, 0, [])

    async def record(self, signals: Sequence[Signal], items: Mapping[str, Item]) -> None:
        self.record_sync(signals, items)

    def record_sync(self, signals: Sequence[Signal], items: Mapping[str, Item]) -> None:
        eng_rate, int_rate = self._eng_rate, self._int_rate
        for s in signals:
            w = self._weighting.strength(s)
            if w == 0.0:
                continue
            self._engagement[s.content_id].add(w, s.timestamp, eng_rate)
            item = items.get(s.content_id)
            if item is not None:
                profile = self._interests[s.user_id]
                for feat in item.features():
                    profile[feat].add(w, s.timestamp, int_rate)

    async def forget_item(self, item_id: str) -> None:
        self._engagement.pop(item_id, None)
        self._top_cache = (-math.inf, 0, [])

    async def item_engagement(self, item_ids: Sequence[str], *, now: float) -> dict[str, float]:
        eng, rate = self._engagement, self._eng_rate
        return {i: eng[i].at(now, rate) for i in item_ids if i in eng}

    async def user_interests(self, user_id: str, *, now: float) -> dict[str, float]:
        profile = self._interests.get(user_id)
        if not profile:
            return {}
        rate = self._int_rate
        return {f: v.at(now, rate) for f, v in profile.items()}

    async def top_engaged(self, limit: int, *, now: float) -> list[str]:
        at, cached_limit, ids = self._top_cache
        if 0.0 <= now - at < _TOP_CACHE_SECONDS and cached_limit >= limit:
            return ids[:limit]
        rate = self._eng_rate
        # All sums decay at one rate, so log(value) + rate * t_ref orders them at any `now`.
        keyed = (
            (math.log(d.value) + rate * d.t_ref, item_id)
            for item_id, d in self._engagement.items()
            if d.value > 0
        )
        ids = [item_id for _, item_id in heapq.nlargest(limit, keyed)]
        self._top_cache = (now, limit, ids)
        return ids
