"""FeatureStore held in process memory; the embedded default rebuilds it from the SignalLog."""

from __future__ import annotations

import bisect
import heapq
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from overdrive.domain.context import ALL_CONTEXTS, NO_CONTEXT, device_key, of_signal, signal_keys, timeline, week_of
from overdrive.domain.decay import DecayedSum, decay_rate, decayed_many
from overdrive.domain.item_numbers import ItemColumn, item_numbers
from overdrive.domain.types import Item, RankingReads, Session, Signal, UserActivity, UserModel
from overdrive.domain.weighting import SignalWeighting
from overdrive.domain.windows import WINDOWS_S, WindowCounts, buckets_of, velocity
from overdrive.store.feature_config import FeatureConfig

_TOP_CACHE_SECONDS = 2.0  # the most-engaged list may lag new signals by this much
_PRUNE_EVERY = 50_000  # signals between sweeps that drop expired window buckets
# Ids remembered to apply a redelivered signal once: the embedded log ahead of this store refuses
# a repeated id for all time, so only a batch handed over twice reaches here (~200 B an id).
_DEDUPE_CAPACITY = 65_536


def _fold(profile: dict[str, DecayedSum], feats: tuple[str, ...], w: float, ts: float, rate: float) -> None:
    """DecayedSum.add for several features at once (the hot path of every signal, kept inline)."""
    exp = math.exp
    for feat in feats:
        d = profile.get(feat)
        if d is None:
            d = profile[feat] = DecayedSum()
            d.value, d.t_ref = w, ts
        elif ts >= d.t_ref:
            d.value = d.value * exp(-rate * (ts - d.t_ref)) + w
            d.t_ref = ts
        else:
            d.value += w * exp(-rate * (d.t_ref - ts))


def _timestamp(s: Signal) -> float:
    return s.timestamp


@dataclass(slots=True)
class _Entity:
    number: int = 0  # `item_numbers`' for items (authors have none)
    engagement: DecayedSum = field(default_factory=DecayedSum)
    windows: WindowCounts = field(default_factory=WindowCounts)


@dataclass(slots=True)
class _User:
    counts: Counter = field(default_factory=Counter)
    recent: list = field(default_factory=list)
    long: dict = field(default_factory=dict)
    short: dict = field(default_factory=dict)
    windows: WindowCounts = field(default_factory=WindowCounts)
    session_start: float = -math.inf
    session_last: float = -math.inf
    session_signals: int = 0
    sessions_total: int = 0
    excluded: set = field(default_factory=set)
    medium: dict = field(default_factory=dict)
    habits: dict = field(default_factory=dict)  # `signal_keys` habit keys -> DecayedSum (long rate)
    contexts: dict = field(default_factory=dict)  # context key -> feature -> DecayedSum (long rate)
    weeks: dict = field(default_factory=dict)  # ISO week -> feature -> summed strength


class MemoryFeatureStore:
    def __init__(self, *, config: FeatureConfig) -> None:
        self._cfg = config
        self._weighting = SignalWeighting(config.signal_weights)
        self._eng_rate = decay_rate(config.engagement_half_life_s)
        self._long_rate = decay_rate(config.interest_half_life_s)
        self._short_rate = decay_rate(config.short_term_half_life_s)
        self._medium_rate = decay_rate(config.medium_term_half_life_s)
        self._prior: dict[str, dict[str, DecayedSum]] = {}  # context key -> everyone's feature affinity
        self._items: dict[str, _Entity] = {}
        # Each item's engagement (value, t_ref) again by item number: what a ranking gathers.
        self._eng_value, self._eng_t_ref = ItemColumn(0.0), ItemColumn(-math.inf)
        self._authors: dict[str, _Entity] = {}
        self._users: dict[str, _User] = {}
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._hot: dict[str, float] = {}  # items with a signal in the last hour -> last signal time
        self._top_cache: tuple[float, int, list[str]] = (-math.inf, 0, [])
        self._since_prune = 0

    async def apply(self, signals: Sequence[Signal], items: Mapping[str, Item], *, now: float | None = None) -> list[Signal]:
        return self.apply_sync(signals, items, now=time.time() if now is None else now)

    def apply_sync(self, signals: Sequence[Signal], items: Mapping[str, Item], *, now: float) -> list[Signal]:
        applied = []
        for s in signals:
            if s.signal_id is not None and not self._first_sighting(s.signal_id, now):
                continue
            applied.append(s)
            self._apply_one(s, items.get(s.content_id), now)
        self._since_prune += len(applied)
        if self._since_prune >= _PRUNE_EVERY:
            self._prune(now)
        return applied

    def _first_sighting(self, signal_id: str, now: float) -> bool:
        seen = self._seen
        if signal_id in seen:
            return False
        seen[signal_id] = now
        if len(seen) > _DEDUPE_CAPACITY:
            seen.popitem(last=False)
        return True

    def _apply_one(self, s: Signal, item: Item | None, now: float) -> None:
        w = self._weighting.strength(s)
        ts = s.timestamp
        entity = self._items.get(s.content_id) or self._items.setdefault(s.content_id, _Entity(item_numbers.number(s.content_id)))
        entity.engagement.add(w, ts, self._eng_rate)
        self._eng_value[entity.number], self._eng_t_ref[entity.number] = entity.engagement.value, entity.engagement.t_ref
        buckets = buckets_of(ts, now)
        entity.windows.add_to(buckets, w)
        if ts >= now - WINDOWS_S["1h"]:
            self._hot[s.content_id] = max(ts, self._hot.get(s.content_id, ts))

        user = self._users.get(s.user_id) or self._users.setdefault(s.user_id, _User())
        user.counts[s.signal_type] += 1
        if s.signal_type in self._cfg.excluding_signal_types:
            user.excluded.add(s.content_id)
        user.windows.add_to(buckets, w)
        self._session(user, ts)
        recent = user.recent  # oldest first; priority lanes and backfill deliver out of time order
        if not recent or ts >= recent[-1].timestamp:
            recent.append(s)
        else:
            bisect.insort(recent, s, key=_timestamp)
        if len(recent) > self._cfg.recent_per_user:
            del recent[0]

        if item is not None:
            if item.author_id:
                author = self._authors.get(item.author_id) or self._authors.setdefault(item.author_id, _Entity())
                author.engagement.add(w, ts, self._eng_rate)
                author.windows.add_to(buckets, w)
            if w != 0.0:
                feats = item.features()
                _fold(user.long, feats, w, ts, self._long_rate)
                _fold(user.short, feats, w, ts, self._short_rate)
                _fold(user.medium, feats, w, ts, self._medium_rate)
                week_key = week_of(ts)
                week = user.weeks.get(week_key)
                if week is None:
                    week = user.weeks[week_key] = {}
                    for old in sorted(user.weeks)[: -self._cfg.timeline_weeks]:
                        del user.weeks[old]
                for f in feats:
                    week[f] = week.get(f, 0.0) + w
        context = of_signal(s.metadata) if s.metadata else None
        if context is not None:
            habits, key = signal_keys(context, ts)
            _fold(user.habits, habits, 1.0, ts, self._long_rate)
            if item is not None and w != 0.0 and key != NO_CONTEXT:
                feats = item.features()
                _fold(user.contexts.setdefault(key, {}), feats, w, ts, self._long_rate)
                if (on_device := device_key(key)) is not None:
                    _fold(user.contexts.setdefault(on_device, {}), feats, w, ts, self._long_rate)
                _fold(self._prior.setdefault(key, {}), feats, w, ts, self._long_rate)
                _fold(self._prior.setdefault(ALL_CONTEXTS, {}), feats, w, ts, self._long_rate)

    def _session(self, user: _User, ts: float) -> None:
        if ts > user.session_last + self._cfg.session_gap_s:
            user.session_start, user.session_signals = ts, 0
            user.sessions_total += 1
        if ts >= user.session_start:
            user.session_signals += 1
            user.session_last = max(user.session_last, ts)

    def _prune(self, now: float) -> None:
        self._since_prune = 0
        for table in (self._items, self._authors):
            for e in table.values():
                e.windows.prune(now)
        for u in self._users.values():
            u.windows.prune(now)
        hour_ago = now - WINDOWS_S["1h"]
        self._hot = {k: v for k, v in self._hot.items() if v >= hour_ago}
        horizon = now - self._cfg.dedupe_ttl_s
        while self._seen and next(iter(self._seen.values())) < horizon:
            self._seen.popitem(last=False)

    async def forget_item(self, item_id: str) -> None:
        if (entity := self._items.pop(item_id, None)) is not None:
            self._eng_value[entity.number], self._eng_t_ref[entity.number] = 0.0, -math.inf
        self._hot.pop(item_id, None)
        self._top_cache = (-math.inf, 0, [])

    async def forget_user(self, user_id: str, signals: Sequence[Signal], items: Mapping[str, Item]) -> None:
        self._users.pop(user_id, None)
        for s in signals:
            if s.signal_id is not None:
                self._seen.pop(s.signal_id, None)

    async def item_engagement(self, item_ids: Sequence[str], *, now: float) -> dict[str, float]:
        """`DecayedSum.at` of each known item's engagement, gathered by item number: a ranking may
        read thousands."""
        found = item_numbers.of(item_ids)
        t_ref = self._eng_t_ref.gather(found)
        known = np.flatnonzero(t_ref > -math.inf)
        values = decayed_many(self._eng_value.gather(found[known]), t_ref[known], now, self._eng_rate)
        return dict(zip(map(item_ids.__getitem__, known.tolist()), values.tolist()))

    async def top_engaged(self, limit: int, *, now: float) -> list[str]:
        at, cached_limit, ids = self._top_cache
        if 0.0 <= now - at < _TOP_CACHE_SECONDS and cached_limit >= limit:
            return ids[:limit]
        rate = self._eng_rate
        # All sums decay at one rate, so log(value) + rate * t_ref orders them at any `now`.
        keyed = (
            (math.log(e.engagement.value) + rate * e.engagement.t_ref, item_id)
            for item_id, e in self._items.items()
            if e.engagement.value > 0
        )
        ids = [item_id for _, item_id in heapq.nlargest(limit, keyed)]
        self._top_cache = (now, limit, ids)
        return ids

    async def item_velocity(self, item_ids: Sequence[str], *, now: float) -> dict[str, float]:
        out = {}
        for item_id in item_ids:
            if item_id in self._hot:
                windows = self._items[item_id].windows
                out[item_id] = velocity(windows.window("1h", now)[0], windows.window("24h", now)[0])
        return out

    async def trending(self, limit: int, *, now: float) -> list[tuple[str, float]]:
        scored = []
        for item_id in self._hot:
            windows = self._items[item_id].windows
            c1, _ = windows.window("1h", now)
            if c1:
                scored.append((velocity(c1, windows.window("24h", now)[0]), item_id))
        return [(i, v) for v, i in heapq.nlargest(limit, scored)]

    async def windows(self, kind: str, entity_id: str, *, now: float) -> dict[str, dict[str, float]]:
        table = {"item": self._items, "author": self._authors, "user": self._users}.get(kind)
        if table is None:
            raise ValueError(f"unknown entity kind {kind!r}")
        entity = table.get(entity_id)
        return (entity.windows if entity else WindowCounts()).all_windows(now)

    async def user_interests(self, user_id: str, *, now: float, term: str = "long") -> dict[str, float]:
        user = self._users.get(user_id)
        if user is None:
            return {}
        profile, rate = {"short": (user.short, self._short_rate), "medium": (user.medium, self._medium_rate),
                         "long": (user.long, self._long_rate)}[term]
        return _decayed(profile, now, rate)

    async def user_model(self, user_id: str, *, now: float) -> UserModel:
        user = self._users.get(user_id) or _User()
        habits = _decayed(user.habits, now, self._long_rate)
        return UserModel(
            devices=_prefixed(habits, "dev:"), timezones=_prefixed(habits, "tz:"), hours=_prefixed(habits, "hr:"),
            locations={**_prefixed(habits, "loc:"), **_prefixed(habits, "city:")},
            contexts={k: _decayed(v, now, self._long_rate) for k, v in user.contexts.items()},
            weeks={w: dict(user.weeks[w]) for w in timeline(now, self._cfg.timeline_weeks) if w in user.weeks},
            medium_interests=_decayed(user.medium, now, self._medium_rate),
        )

    async def user_signal_total(self, user_id: str) -> int:
        user = self._users.get(user_id)
        return 0 if user is None else sum(user.counts.values())

    async def user_activity(self, user_id: str, *, now: float) -> UserActivity:
        user = self._users.get(user_id)
        if user is None:
            return UserActivity(signal_counts={}, recent=[], session=None, sessions_total=0)
        return UserActivity(
            signal_counts=dict(user.counts),
            recent=list(reversed(user.recent)),
            session=Session(started_at=user.session_start, last_signal_at=user.session_last, signals=user.session_signals),
            sessions_total=user.sessions_total,
        )

    async def excluded_items(self, user_id: str, item_ids: Sequence[str]) -> set[str]:
        user = self._users.get(user_id)
        return set() if user is None else user.excluded.intersection(item_ids)

    async def ranking_reads(self, user_id: str, item_ids: Sequence[str], *, now: float,
                            context: str | None = None) -> RankingReads:
        user = self._users.get(user_id)
        in_context = user.contexts.get(context) if user is not None and context else None
        on_device = user.contexts.get(device_key(context) or "") if user is not None and context else None
        return RankingReads(
            excluded=await self.excluded_items(user_id, item_ids),
            engagement=await self.item_engagement(item_ids, now=now),
            long_interests=await self.user_interests(user_id, now=now),
            short_interests=await self.user_interests(user_id, now=now, term="short"),
            signal_total=await self.user_signal_total(user_id),
            context_interests=_decayed(in_context, now, self._long_rate) if in_context else {},
            device_interests=_decayed(on_device, now, self._long_rate) if on_device else {},
        )

    async def context_prior(self, context: str, *, now: float) -> tuple[dict[str, float], dict[str, float]]:
        prior, baseline = self._prior.get(context), self._prior.get(ALL_CONTEXTS)
        return (_decayed(prior, now, self._long_rate) if prior else {},
                _decayed(baseline, now, self._long_rate) if baseline else {})


def _decayed(profile: Mapping[str, DecayedSum], now: float, rate: float) -> dict[str, float]:
    """`DecayedSum.at` for each feature, inlined: a ranking reads several profiles of ~100 features."""
    exp = math.exp
    return {f: v.value * exp(rate * (v.t_ref - now)) if now >= v.t_ref else v.value for f, v in profile.items()}


def _prefixed(values: Mapping[str, float], prefix: str) -> dict[str, float]:
    return {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}
