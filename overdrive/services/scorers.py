"""The Scorer seam and the scorers that work from stored signals alone.

A scorer returns one score per candidate, aligned with the input, in [-1, 1] (negative means
"evidence against"), or None when it has nothing to say for this request; the blend then leaves
its component out and renormalises the other weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from overdrive.domain.decay import decay_rate
from overdrive.domain.types import Item
from overdrive.store.protocols import FeatureStore


class Scorer(Protocol):
    name: str

    async def score(self, user_id: str, items: Sequence[Item], now: float) -> list[float] | None: ...


def _scale_by_max_abs(values: list[float]) -> list[float] | None:
    peak = max((abs(v) for v in values), default=0.0)
    if peak == 0.0:
        return None
    return [v / peak for v in values]


class EngagementScorer:
    """`real_time`: time-decayed weighted engagement per item, log-scaled against the best candidate."""

    name = "real_time"

    def __init__(self, features: FeatureStore) -> None:
        self._features = features

    async def score(self, user_id: str, items: Sequence[Item], now: float) -> list[float] | None:
        eng = await self._features.item_engagement([i.id for i in items], now=now)
        if not eng:
            return None
        return _scale_by_max_abs([math.copysign(math.log1p(abs(eng.get(i.id, 0.0))), eng.get(i.id, 0.0)) for i in items])


class FreshnessScorer:
    """`freshness`: 2^(-age / half-life) from the item's `created_at`."""

    name = "freshness"

    def __init__(self, *, half_life_s: float) -> None:
        self._rate = decay_rate(half_life_s)

    async def score(self, user_id: str, items: Sequence[Item], now: float) -> list[float] | None:
        if all(i.created_at is None for i in items):
            return None
        return [
            0.0 if i.created_at is None else math.exp(-self._rate * max(0.0, now - i.created_at))
            for i in items
        ]


class InterestScorer:
    """`user_interests`: the user's decayed affinity to each item's tags, author and media type.

    Cosine between the user's feature profile and the item's binary feature vector, scaled so the
    best-matching candidate scores 1 (or -1 for the most disliked).
    """

    name = "user_interests"

    def __init__(self, features: FeatureStore) -> None:
        self._features = features

    async def score(self, user_id: str, items: Sequence[Item], now: float) -> list[float] | None:
        profile = await self._features.user_interests(user_id, now=now)
        norm = math.sqrt(sum(v * v for v in profile.values()))
        if norm == 0.0:
            return None
        raw = []
        for item in items:
            feats = item.features()
            raw.append(sum(profile.get(f, 0.0) for f in feats) / (norm * math.sqrt(len(feats))))
        return _scale_by_max_abs(raw)
