"""The Scorer seam and the scorers that work from stored signals alone.

A scorer returns one score per candidate, aligned with the input, in [-1, 1] (negative means
"evidence against"), or None when it has nothing to say for this request; the blend then leaves
its component out and renormalises the other weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import repeat
from typing import Protocol

from overdrive.domain.decay import decay_rate
from overdrive.domain.types import Item
from overdrive.store.protocols import FeatureStore


class ContentModel(Protocol):
    async def score(self, user_id: str, items: Sequence[Item], now: float) -> list[float] | None: ...


class CollaborativeModel(Protocol):
    async def score(self, user_id: str, item_ids: Sequence[str]) -> Sequence[float] | None: ...


class Scorer(Protocol):
    name: str

    async def score(self, user_id: str, items: Sequence[Item], now: float) -> list[float] | None: ...


def _scale_by_max_abs(values: list[float]) -> list[float] | None:
    peak = max((abs(v) for v in values), default=0.0)
    if peak == 0.0:
        return None
    return [v / peak for v in values]


class EngagementScorer:
    """`real_time`: decayed weighted engagement, lifted by velocity (trending against its own day).

    Both parts are log-scaled against the best candidate; velocity adds at most a quarter.
    """

    name = "real_time"
    _VELOCITY_SHARE = 0.25

    def __init__(self, features: FeatureStore) -> None:
        self._features = features

    async def score(self, user_id: str, items: Sequence[Item], now: float) -> list[float] | None:
        ids = [i.id for i in items]
        eng = await self._features.item_engagement(ids, now=now)
        if not eng:
            return None
        engagement = _scale_by_max_abs([math.copysign(math.log1p(abs(e)), e) for e in (eng.get(i, 0.0) for i in ids)])
        if engagement is None:
            return None
        vel = await self._features.item_velocity(ids, now=now)
        lift = _scale_by_max_abs([max(0.0, math.log(vel.get(i, 1.0))) for i in ids])
        if lift is None:
            return engagement
        share = self._VELOCITY_SHARE
        return [(1 - share) * e + share * v for e, v in zip(engagement, lift, strict=True)]


class ContentScorer:
    """`content_based`: cosine of each item's fused content embedding with the user's long- and
    short-term interest embeddings; cold items (never interacted with) rank by content alone."""

    name = "content_based"

    def __init__(self, model: ContentModel) -> None:
        self._model = model

    async def score(self, user_id: str, items: Sequence[Item], now: float) -> list[float] | None:
        return await self._model.score(user_id, items, now)


class CollaborativeScorer:
    """`collaborative`: the CF ensemble's score, scaled so the best candidate scores 1.

    Cold users get the ensemble's popularity prior, cold items content-neighbour scores; with no
    trained model yet the component is left out.
    """

    name = "collaborative"

    def __init__(self, model: CollaborativeModel) -> None:
        self._model = model

    async def score(self, user_id: str, items: Sequence[Item], now: float) -> list[float] | None:
        scores = await self._model.score(user_id, [i.id for i in items])
        if scores is None or len(scores) == 0:
            return None
        return _scale_by_max_abs([float(x) for x in scores])


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
    """`user_interests`: the user's affinity to each item's tags, author and media type.

    Cosine between a feature profile and the item's binary feature vector, for the long-term
    profile (weeks) and the short-term one (this hour). The short-term cosine counts in proportion
    to how much recent evidence there is (1 - e^-mass, mass = the profile's decayed total), so a
    session's fresh interest shows at once and fades within hours. The sum is scaled so the
    best-matching candidate scores 1 (or -1 for the most disliked).
    """

    name = "user_interests"

    def __init__(self, features: FeatureStore) -> None:
        self._features = features

    async def score(self, user_id: str, items: Sequence[Item], now: float) -> list[float] | None:
        feats = [item.features() for item in items]
        totals = [0.0] * len(items)
        used = 0
        for term in ("long", "short"):
            profile = await self._features.user_interests(user_id, now=now, term=term)
            norm = math.sqrt(sum(v * v for v in profile.values()))
            if norm == 0.0:
                continue
            used += 1
            confidence = 1.0 if term == "long" else 1.0 - math.exp(-sum(abs(v) for v in profile.values()))
            get, zeros = profile.get, repeat(0.0)
            for idx, fs in enumerate(feats):  # map/repeat: the per-feature loop runs in C
                totals[idx] += confidence * sum(map(get, fs, zeros)) / (norm * math.sqrt(len(fs)))
        return _scale_by_max_abs(totals) if used else None
