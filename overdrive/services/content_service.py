"""Content understanding in the service: features at ingest, the vector index, content scores.

Item writes hand items to a `ContentPipeline` (journaled, batched, in the background, cached by
content hash), so a write never waits on an encoder. Its sink puts each fused embedding into the
`VectorIndex`, which then serves `/items/{id}/similar`, candidate retrieval and content scores.
A user's long- and short-term interest embeddings are computed on demand from their recent
signals in the live state (decayed, signal-weighted sums of item embeddings), so they need no
state of their own and hold in every deployment.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from overdrive.domain.errors import NotFound
from overdrive.domain.types import Item
from overdrive.domain.weighting import SignalWeighting
from overdrive.content.cache import ContentCache, content_hash
from overdrive.content.extractor import MultiModalFeatureExtractor
from overdrive.content.interest import interest_query
from overdrive.content.pipeline import ContentPipeline
from overdrive.content.types import ContentFeatures
from overdrive.index.protocols import VectorIndex
from overdrive.services.scorers import ids_of
from overdrive.store.protocols import FeatureStore, ItemCatalog

log = logging.getLogger(__name__)
_MIN_SHORT_TERM_MASS = 0.5  # below this much recent evidence the session profile stays out
_PROFILE_CACHE_USERS = 20_000


_FAILED_KEPT = 10_000  # items whose media failed, remembered for /items/{id}/features


class ContentService:
    def __init__(
        self,
        *,
        extractor: MultiModalFeatureExtractor,
        cache: ContentCache,
        index: VectorIndex,
        journal_path: Path,
        features: FeatureStore,
        catalog: ItemCatalog,
        weighting: SignalWeighting,
        long_half_life_s: float,
        short_half_life_s: float,
    ) -> None:
        self._extractor = extractor
        self._cache = cache
        self._index = index
        self._features = features
        self._catalog = catalog
        self._weighting = weighting
        self._long_rate = math.log(2.0) / long_half_life_s
        self._short_rate = math.log(2.0) / short_half_life_s
        self._pipeline = ContentPipeline(extractor=extractor, sink=self._store, journal_path=journal_path)
        self._backfill: asyncio.Future | None = None
        # user -> (key, t0, query, query with the short term, short-term mass, items acted on)
        self._profiles: OrderedDict[str, tuple] = OrderedDict()
        # Features whose media failed are not cached (the next write fetches again): their last
        # outcome is kept here so /items/{id}/features can say what failed instead of "pending".
        self._failed: OrderedDict[str, ContentFeatures] = OrderedDict()

    async def start(self) -> None:
        self._pipeline.start()
        self._backfill = asyncio.create_task(asyncio.to_thread(self._index_missing))

    def _index_missing(self) -> int:
        """Queue catalog items that have no vector yet: written while the service was stopped
        (`ingest --direct`) or before content features were switched on. Already-computed
        features come back from the cache by content hash, so this costs a lookup per item."""
        queued = 0
        for batch in self._catalog.scan(batch_size=1000):
            vectors = self._index.get_many([i.id for i in batch])
            missing = [i for i in batch if i.id not in vectors]
            if missing:
                self._pipeline.submit(missing)
                queued += len(missing)
        if queued:
            log.info("queued %d catalog items without content features", queued)
        return queued

    def _store(self, computed: list[ContentFeatures]) -> None:
        """Pipeline sink (its own thread): index the fused embeddings; no content → no vector."""
        if computed:
            self._index.upsert([f.item_id for f in computed], np.stack([f.embedding for f in computed]))
        for f in computed:
            if f.errors:
                self._failed[f.item_id] = f
                self._failed.move_to_end(f.item_id)
                while len(self._failed) > _FAILED_KEPT:
                    self._failed.popitem(last=False)
            else:
                self._failed.pop(f.item_id, None)

    async def submit(self, items: Sequence[Item]) -> None:
        await asyncio.to_thread(self._pipeline.submit, list(items))

    async def forget(self, item_id: str) -> None:
        await asyncio.to_thread(self._index.remove, item_id)

    async def similar(self, item_id: str, k: int) -> dict[str, Any]:
        if not (await self._catalog.get([item_id])):
            raise NotFound(f"item {item_id!r} not found")
        vector = self._index.get(item_id)
        if vector is None:
            return {"item_id": item_id, "features_pending": True, "items": []}
        hits = await asyncio.to_thread(self._index.search, vector, k, exclude={item_id})
        return {"item_id": item_id, "features_pending": False,
                "items": [{"id": i, "score": round(float(s), 6)} for i, s in hits]}

    def embeddings(self, item_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The indexed content embeddings among `item_ids` (for diversity re-ranking)."""
        return self._index.get_many(item_ids)

    async def describe(self, item_id: str) -> dict[str, Any]:
        """What content understanding made of an item: modalities, descriptors, degraded parts."""
        item = (await self._catalog.get([item_id])).get(item_id)
        if item is None:
            raise NotFound(f"item {item_id!r} not found")
        fingerprint = await asyncio.to_thread(self._extractor.fingerprint)  # may load the models
        key = content_hash(item, fingerprint=fingerprint)
        found = (await asyncio.to_thread(self._cache.get_many, [key])).get(key)
        if found is None:
            failed = self._failed.get(item_id)
            if failed is None or failed.content_hash != key:
                return {"item_id": item_id, "features_pending": True}
            found = failed  # computed without the media that failed (not cached: refetched on the next write)
        return {
            "item_id": item_id,
            "features_pending": False,
            "content_hash": found.content_hash,
            "modalities": list(found.modalities),
            "degraded": list(found.degraded),
            "descriptors": found.descriptors,
            "errors": found.errors,
            "indexed": self._index.get(item_id) is not None,
        }

    async def _query(self, user_id: str, now: float, signal_total: int | None = None) -> tuple[np.ndarray | None, set[str]]:
        """The user's interest query (`interest_query` of their long- and short-term interest
        embeddings) and the items they acted on; None without a profile.

        Every term of a profile decays at one rate, so decay scales a profile without turning
        it, and the query (normalised parts) only changes when the short-term part drops out
        (too little recent evidence left). Both queries are cached per user until their signal
        total or the index change; the ranking then needs only the total (`signal_total`, when
        the caller read it already) and the mass check.
        """
        if signal_total is None:
            signal_total = await self._features.user_signal_total(user_id)
        key = (signal_total, len(self._index))
        cached = self._profiles.get(user_id)
        if cached is None or cached[0] != key:
            activity = await self._features.user_activity(user_id, now=now)
            long, short, short_mass, seen = self._compute_profile(activity.recent, now)
            queries = (None, None) if long is None else (
                interest_query(long_term=long), interest_query(long_term=long, short_term=short))
            cached = (key, now, *queries, short_mass, seen)
            self._profiles[user_id] = cached
            if len(self._profiles) > _PROFILE_CACHE_USERS:
                self._profiles.popitem(last=False)
        else:
            self._profiles.move_to_end(user_id)
        _, at, long_only, with_short, short_mass, seen = cached
        recent_enough = short_mass * math.exp(-self._short_rate * max(0.0, now - at)) >= _MIN_SHORT_TERM_MASS
        return (with_short if recent_enough else long_only), seen

    def _compute_profile(self, recent: Sequence, now: float) -> tuple[np.ndarray | None, np.ndarray, float, set[str]]:
        long = np.zeros(self._index.dim, dtype=np.float32)
        short = np.zeros(self._index.dim, dtype=np.float32)
        short_mass, used = 0.0, False
        vectors = self._index.get_many([s.content_id for s in recent])
        for s in recent:
            vector = vectors.get(s.content_id)
            weight = self._weighting.strength(s)
            if vector is None or weight == 0.0:
                continue
            age = max(0.0, now - s.timestamp)
            long += weight * math.exp(-self._long_rate * age) * vector
            short_decay = math.exp(-self._short_rate * age)
            short += weight * short_decay * vector
            short_mass += abs(weight) * short_decay
            used = True
        return (long if used else None), short, short_mass, {s.content_id for s in recent}

    def reading(self, features: FeatureStore) -> ContentService:
        """The same content index, with user profiles read from `features` instead (a replay of
        history scores with one); it only scores and retrieves."""
        view = copy.copy(self)
        view._features, view._profiles = features, OrderedDict()
        return view

    async def score(self, user_id: str, items: Sequence[Item], now: float, *, signal_total: int | None = None) -> np.ndarray | None:
        """Cosine of each item's embedding with the user's interest query; 0 for items without one."""
        query, _ = await self._query(user_id, now, signal_total)
        if query is None:
            return None
        ids = ids_of(items)
        if not ids:
            return np.zeros(0)
        # Index rows are unit vectors (or zero), the query is one: the dot product is the cosine.
        return np.clip(self._index.rows(ids) @ query, -1.0, 1.0)

    async def retrieve(self, user_id: str, limit: int, now: float) -> list[str]:
        """Catalog items nearest the user's interest embedding, excluding what they acted on."""
        query, seen = await self._query(user_id, now)
        if query is None:
            return []
        hits = await asyncio.to_thread(self._index.search, query, limit, exclude=seen)
        return [item_id for item_id, _ in hits]

    def forget_user(self, user_id: str) -> None:
        """GDPR erasure: drop the user's cached interest profile (it is derived from live state)."""
        self._profiles.pop(user_id, None)

    def health(self) -> dict[str, Any]:
        report = self._extractor.health()
        return {"encoders": report, "pipeline": self._pipeline.stats(), "indexed_items": len(self._index)}

    async def close(self) -> None:
        if self._backfill is not None:
            self._backfill.cancel()
        await asyncio.to_thread(self._pipeline.close)
        await asyncio.to_thread(self._index.save)
        self._cache.close()
        self._extractor.close()
