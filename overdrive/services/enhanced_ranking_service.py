"""EnhancedOverdriveRankingService: score candidates with every scorer, blend, explain.

The blend is a weighted sum over the components that have something to say for this request,
with their weights renormalised to sum to one; each item's `scores` holds every component's
contribution (normalised weight × component score), so the contributions add up to `score`.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from overdrive.domain.errors import InvalidInput
from overdrive.domain.types import COMPONENTS, Item, RankedItem
from overdrive.services.scorers import Scorer
from overdrive.store.protocols import FeatureStore, ItemCatalog
from overdrive.stream.protocols import SignalBus

# How long a ranking waits for the user's own just-acknowledged signals to be applied.
READ_YOUR_WRITES_TIMEOUT_S = 0.5


@dataclass(frozen=True, slots=True)
class Candidate:
    """A candidate named by id, optionally carrying content that overrides the catalog's."""

    id: str
    content: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RankResult:
    user_id: str
    items: list[RankedItem]
    strategy: str
    request_id: str
    processing_time_ms: float
    candidates_considered: int


Retriever = Callable[[str, int, float], Awaitable[list[str]]]  # (user_id, limit, now) -> item ids


class RankingObserver(Protocol):
    """Told about every ranking (insights keep the recent ones per user)."""

    def observe(self, result: RankResult) -> None: ...


def strategies_from_weights(ranking_weights: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Named blends for A/B tests: the configured blend plus each component alone."""
    named = {"enhanced": dict(ranking_weights)}
    named.update({c: {c: 1.0} for c in COMPONENTS})
    return named


class EnhancedOverdriveRankingService:
    def __init__(
        self,
        *,
        scorers: Sequence[Scorer],
        strategies: Mapping[str, Mapping[str, float]],
        catalog: ItemCatalog,
        features: FeatureStore,
        bus: SignalBus,
        catalog_candidates: int,
        observers: Sequence[RankingObserver] = (),
        retrievers: Sequence[Retriever] = (),
    ) -> None:
        self._scorers = list(scorers)
        self._strategies = {k: dict(v) for k, v in strategies.items()}
        self._catalog = catalog
        self._features = features
        self._bus = bus
        self._catalog_candidates = catalog_candidates
        self._observers = list(observers)
        self._retrievers = list(retrievers)  # personal candidate sources (content, collaborative)

    @property
    def scorers(self) -> list[Scorer]:
        return list(self._scorers)

    @property
    def strategies(self) -> dict[str, dict[str, float]]:
        return {k: dict(v) for k, v in self._strategies.items()}

    async def rank(
        self,
        *,
        user_id: str,
        candidates: Sequence[Candidate] | None,
        limit: int,
        strategy: str = "enhanced",
        request_id: str | None = None,
    ) -> RankResult:
        started = time.perf_counter()
        weights = self._strategies.get(strategy)
        if weights is None:
            raise InvalidInput(f"unknown strategy {strategy!r}; valid: {sorted(self._strategies)}", field="strategy")
        await self._bus.settled(user_id, timeout_s=READ_YOUR_WRITES_TIMEOUT_S)
        now = time.time()
        items = await (self._resolve(candidates) if candidates is not None else self._from_catalog(user_id, now))
        ranked = await self._blend(user_id, items, weights, now, limit)
        result = RankResult(
            user_id=user_id,
            items=ranked,
            strategy=strategy,
            request_id=request_id or uuid.uuid4().hex,
            processing_time_ms=(time.perf_counter() - started) * 1000.0,
            candidates_considered=len(items),
        )
        for observer in self._observers:
            observer.observe(result)
        return result

    async def _resolve(self, candidates: Sequence[Candidate]) -> list[Item]:
        stored = await self._catalog.get([c.id for c in candidates])
        items = []
        for c in candidates:
            base = stored.get(c.id) or Item(id=c.id)
            items.append(dataclasses.replace(base, **c.content) if c.content else base)
        return items

    async def _from_catalog(self, user_id: str, now: float) -> list[Item]:
        """A de-duplicated union: the user's nearest items by content and collaborative top-N,
        then trending, popular-now and newest catalog items."""
        n = self._catalog_candidates
        quarter = max(1, n // 4)
        ids: dict[str, None] = {}
        for retrieve in self._retrievers:
            ids.update(dict.fromkeys(await retrieve(user_id, quarter, now)))
        ids.update(dict.fromkeys(i for i, _ in await self._features.trending(quarter, now=now)))
        ids.update(dict.fromkeys(await self._features.top_engaged(quarter, now=now)))
        ids.update(dict.fromkeys(await self._catalog.newest(n)))
        chosen = list(ids)[:n]
        stored = await self._catalog.get(chosen)
        return [stored[i] for i in chosen if i in stored]

    async def _blend(
        self, user_id: str, items: list[Item], weights: Mapping[str, float], now: float, limit: int
    ) -> list[RankedItem]:
        if not items:
            return []
        parts: dict[str, np.ndarray] = {}
        for scorer in self._scorers:
            if weights.get(scorer.name, 0.0) > 0.0:
                scores = await scorer.score(user_id, items, now)
                if scores is not None:
                    parts[scorer.name] = np.asarray(scores, dtype=np.float64)
        total_weight = sum(weights[name] for name in parts)
        for name in parts:
            parts[name] *= weights[name] / total_weight
        blended = sum(parts.values()) if parts else np.zeros(len(items))
        order = np.argsort(-blended, kind="stable")[:limit]  # stable: ties keep request order
        return [
            RankedItem(
                id=items[idx].id,
                score=float(blended[idx]),
                rank=pos,
                scores={name: float(contrib[idx]) for name, contrib in parts.items()},
            )
            for pos, idx in enumerate(order.tolist(), start=1)
        ]
