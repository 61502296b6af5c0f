"""EnhancedOverdriveRankingService: gather candidates, filter, score, blend, diversify, explain.

The blend is a weighted sum over the components that have something to say for this request,
with their weights renormalised to sum to one; each item's `scores` holds every component's
contribution (normalised weight × component score), so the contributions add up to `score`.
What the ranking needs of live state is read once, for the filter and every scorer
(`FeatureStore.ranking_reads`). Items the user already consumed or rejected are filtered out
first and the blend order is then re-ranked for diversity (`diversity.diversify`). The `learned`
strategy takes its weights from a `BlendLearner` fitted on logged rankings; until it has been
fitted it blends with the configured weights.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from itertools import compress
from operator import itemgetter
from typing import Any, Protocol

import numpy as np

from overdrive.domain.context import Context
from overdrive.domain.errors import InvalidInput
from overdrive.domain.item_numbers import item_numbers
from overdrive.domain.types import COMPONENTS, Candidate, Item, RankedItem, RankingReads, RankResult
from overdrive.services.diversity import DiversityPolicy, diversify, similarity_matrix
from overdrive.services.request_context import RequestContexts
from overdrive.services.scorers import Scorer, ids_of
from overdrive.store.protocols import FeatureStore, ItemCatalog
from overdrive.stream.protocols import SignalBus

# How long a ranking waits for the user's own just-acknowledged signals to be applied.
READ_YOUR_WRITES_TIMEOUT_S = 0.5


Retriever = Callable[[str, int, float], Awaitable[list[str]]]  # (user_id, limit, now) -> item ids
Embeddings = Callable[[Sequence[str]], Mapping[str, np.ndarray]]  # item ids -> content embeddings
LEARNED = "learned"


class LearnedWeights(Protocol):
    """Where the `learned` strategy's weights come from (None: not fitted yet)."""

    @property
    def weights(self) -> Mapping[str, float] | None: ...


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
        bus: SignalBus | None,
        catalog_candidates: int,
        observers: Sequence[RankingObserver] = (),
        retrievers: Sequence[Retriever] = (),
        diversity: DiversityPolicy = DiversityPolicy(mmr_lambda=1.0, max_per_author=0),
        embeddings: Embeddings | None = None,
        learned: LearnedWeights | None = None,
        contexts: RequestContexts | None = None,
        default_strategy: str = "enhanced",
    ) -> None:
        """`bus`: where a ranking waits for the user's own acknowledged signals (None: over state
        nothing writes to, e.g. history replayed); `contexts`: where a ranking's context profiles
        are read from (None: no context is read);
        `default_strategy`: the blend of a request that names none."""
        self._scorers = list(scorers)
        self._strategies = {k: dict(v) for k, v in strategies.items()}
        self._catalog = catalog
        self._features = features
        self._bus = bus
        self._catalog_candidates = catalog_candidates
        self._observers = list(observers)
        self._retrievers = list(retrievers)  # personal candidate sources (content, collaborative)
        self._diversity = diversity
        self._embeddings = embeddings
        self._learned = learned
        self._contexts = contexts
        if default_strategy not in self.strategies:
            raise ValueError(f"default strategy {default_strategy!r} is not one of {sorted(self.strategies)}")
        self.default_strategy = default_strategy

    @property
    def scorers(self) -> list[Scorer]:
        return list(self._scorers)

    @property
    def strategies(self) -> dict[str, dict[str, float]]:
        named = {k: dict(v) for k, v in self._strategies.items()}
        if self._learned is not None:
            named[LEARNED] = self._weights(LEARNED)  # type: ignore[assignment]
        return named

    def _weights(self, strategy: str) -> Mapping[str, float] | None:
        if strategy == LEARNED and self._learned is not None:
            return self._learned.weights or self._strategies["enhanced"]
        return self._strategies.get(strategy)

    async def rank(
        self,
        *,
        user_id: str,
        candidates: Sequence[Candidate] | None,
        limit: int,
        strategy: str | None = None,
        request_id: str | None = None,
        exclude_seen: bool = True,
        weights: Mapping[str, float] | None = None,
        experiment: Mapping[str, Any] | None = None,
        context: Context | None = None,
    ) -> RankResult:
        """One feed, for the user where, when and on what `context` says they are. `weights`, when
        given, is the blend (an experiment arm's own weight set) and `strategy` only its label;
        `experiment` is echoed in the result; no `strategy`: the default one."""
        started = time.perf_counter()
        strategy = strategy or self.default_strategy
        blend = weights if weights is not None else self._weights(strategy)
        if blend is None:
            raise InvalidInput(f"unknown strategy {strategy!r}; valid: {sorted(self.strategies)}", field="strategy")
        items, reads, now = await self._candidates(user_id, candidates, exclude_seen, context)
        ranked = await self._blend(user_id, items, reads, blend, now, limit)
        result = RankResult(
            user_id=user_id,
            items=ranked,
            strategy=strategy,
            request_id=request_id or uuid.uuid4().hex,
            processing_time_ms=(time.perf_counter() - started) * 1000.0,
            candidates_considered=len(items),
            experiment=dict(experiment) if experiment is not None else None,
        )
        self.observe(result)
        return result

    async def rank_each(
        self, *, user_id: str, candidates: Sequence[Candidate] | None, limit: int,
        blends: Mapping[str, Mapping[str, float]], exclude_seen: bool = True, context: Context | None = None,
    ) -> tuple[dict[str, list[RankedItem]], int]:
        """Each blend's feed over the same candidates and live-state reads (what interleaving
        drafts from), and how many candidates there were. Observers are not told: the caller
        tells them (`observe`) about the feed it serves."""
        items, reads, now = await self._candidates(user_id, candidates, exclude_seen, context)
        return {name: await self._blend(user_id, items, reads, blend, now, limit) for name, blend in blends.items()}, len(items)

    def observe(self, result: RankResult) -> None:
        for observer in self._observers:
            observer.observe(result)

    def blend_of(self, strategy: str) -> Mapping[str, float] | None:
        """The weights a named strategy ranks with now (None: no such strategy)."""
        return self._weights(strategy)

    async def components(self, user_id: str, *, now: float) -> tuple[list[Item], dict[str, np.ndarray]]:
        """The candidates the user's feed would rank at `now` (retrieved, less what they have
        seen) and each component's own scores of them, for the components with something to say:
        what a blend is fitted on when history is replayed (`history_blend`)."""
        items, reads = await self._from_catalog(user_id, now, exclude_seen=True, context=None)
        raw: dict[str, np.ndarray] = {}
        for scorer in self._scorers:
            scores = await scorer.score(user_id, items, now, reads) if items else None
            if scores is not None:
                raw[scorer.name] = np.asarray(scores, dtype=np.float64)
        return items, raw

    async def _candidates(self, user_id: str, candidates: Sequence[Candidate] | None, exclude_seen: bool,
                          context: Context | None) -> tuple[list[Item], RankingReads, float]:
        if self._bus is not None:
            await self._bus.settled(user_id, timeout_s=READ_YOUR_WRITES_TIMEOUT_S)
        now = time.time()
        key = await self._contexts.key(user_id, context, now) if self._contexts is not None else None
        if candidates is not None:
            items = await self._resolve(candidates)
            reads = await self._features.ranking_reads(user_id, ids_of(items), now=now, context=key)
            if exclude_seen and reads.excluded:
                items = _without(items, reads.excluded)
        else:
            items, reads = await self._from_catalog(user_id, now, exclude_seen=exclude_seen, context=key)
        if key is not None and self._contexts is not None:
            prior, baseline = await self._contexts.prior(key, now)
            reads = dataclasses.replace(reads, context=context, context_prior=prior, context_baseline=baseline)
        return items, reads, now

    async def _resolve(self, candidates: Sequence[Candidate]) -> list[Item]:
        ids = [c.id for c in candidates]
        item_numbers.pin(ids)  # looked up once for the catalog and every scorer
        stored = await self._catalog.get(ids)
        if len(stored) == len(ids) and not any(map(bool, map(itemgetter(1), candidates))):  # all known, as stored
            return ids_of.known(list(map(stored.__getitem__, ids)), ids)
        return [dataclasses.replace(stored.get(c.id) or Item(id=c.id), **c.content) if c.content
                else stored.get(c.id) or Item(id=c.id) for c in candidates]

    async def _from_catalog(self, user_id: str, now: float, *, exclude_seen: bool,
                            context: str | None) -> tuple[list[Item], RankingReads]:
        """A de-duplicated union: the user's nearest items by content and collaborative top-N,
        then trending, popular-now and newest catalog items, less what the user has seen."""
        n = self._catalog_candidates
        quarter = max(1, n // 4)
        ids: dict[str, None] = {}
        for retrieve in self._retrievers:
            ids.update(dict.fromkeys(await retrieve(user_id, quarter, now)))
        ids.update(dict.fromkeys(i for i, _ in await self._features.trending(quarter, now=now)))
        ids.update(dict.fromkeys(await self._features.top_engaged(quarter, now=now)))
        ids.update(dict.fromkeys(await self._catalog.newest(n)))
        reads = await self._features.ranking_reads(user_id, list(ids), now=now, context=context)
        if exclude_seen:
            for seen in reads.excluded:
                del ids[seen]
        chosen = list(ids)[:n]
        item_numbers.pin(chosen)
        stored = await self._catalog.get(chosen)
        if len(stored) == len(chosen):
            return ids_of.known(list(map(stored.__getitem__, chosen)), chosen), reads
        return [stored[i] for i in chosen if i in stored], reads

    async def _blend(
        self, user_id: str, items: list[Item], reads: RankingReads, weights: Mapping[str, float], now: float, limit: int
    ) -> list[RankedItem]:
        if not items:
            return []
        raw: dict[str, np.ndarray] = {}
        for scorer in self._scorers:
            if weights.get(scorer.name, 0.0) > 0.0:
                scores = await scorer.score(user_id, items, now, reads)
                if scores is not None:
                    raw[scorer.name] = np.asarray(scores, dtype=np.float64)
        total_weight = sum(weights[name] for name in raw)
        parts = {name: scores * (weights[name] / total_weight) for name, scores in raw.items()}
        blended = sum(parts.values()) if parts else np.zeros(len(items))
        diversify_head = self._diversity.active and len(items) > 1
        order = _best(blended, max(2 * limit, 20) if diversify_head else limit)
        if diversify_head:  # MMR only reorders the head of the blend
            pool_items = [items[i] for i in order]
            vectors = self._embeddings([i.id for i in pool_items]) if self._embeddings is not None else {}
            picked = diversify(blended[order], similarity_matrix(pool_items, vectors),
                               [i.author_id for i in pool_items], limit=limit, policy=self._diversity)
            order = order[picked]
        top = order[:limit]
        return [
            RankedItem(id=items[idx].id, score=score, rank=pos, scores=shares, components=own)
            for pos, idx, score, shares, own in zip(
                range(1, len(top) + 1), top.tolist(), blended[top].tolist(), _per_item(parts, top), _per_item(raw, top))
        ]


def _without(items: list[Item], excluded: Collection[str]) -> list[Item]:
    """`items` less the excluded ones; their ids and item numbers, known for the whole list, are
    filtered alike, not looked up again by every scorer."""
    ids = ids_of(items)
    numbers = item_numbers.of(ids)
    keep = np.fromiter(map(excluded.__contains__, ids), dtype=bool, count=len(ids))
    np.logical_not(keep, out=keep)
    kept_ids = list(compress(ids, keep))
    item_numbers.known(kept_ids, numbers[keep])
    return ids_of.known(list(compress(items, keep)), kept_ids)


def _best(scores: np.ndarray, k: int) -> np.ndarray:
    """The positions of the k best scores, best first, ties in request order: as a stable sort of
    them all, but sorting only the head (what scores at least the k-th best) of a big set."""
    if len(scores) > 4 * k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        head = np.flatnonzero(scores >= kth)  # in request order, every tie at the k-th included
        if len(head) >= k:
            return head[np.argsort(-scores[head], kind="stable")][:k]
    return np.argsort(-scores, kind="stable")[:k]


def _per_item(columns: Mapping[str, np.ndarray], rows: np.ndarray) -> list[dict[str, float]]:
    """{component: value} for each of `rows`, from one array per component (one conversion)."""
    names = list(columns)
    values = np.array([columns[n][rows] for n in names]).T.tolist() if names else [[]] * len(rows)
    return [dict(zip(names, row)) for row in values]
