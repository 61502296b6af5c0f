"""FeatureStore in Redis, shared by every API replica and worker; behaves as `MemoryFeatureStore`.

Key layout (`P` = prefix; `{…}` is the Cluster hash tag, ids inside are %-escaped so a brace in
an id cannot move a key to another slot):

    P{u:<user>}:c  all-time counts per type (hash)       P{i:<item>}:e   engagement v, t_ref, version
    P{u:<user>}:s  latest session (hash)                 P{i:<item>}:wf  10-s buckets  c<start>/w<start>
    P{u:<user>}:r  recent signals, newest first (list)   P{i:<item>}:wc  60-s buckets  (TTL span + bucket)
    P{u:<user>}:wf / :wc  windows                        P{a:<author>}:e / :wf / :wc   as for items
    P{u:<user>}:il / :is  long/short interests           P{g}:top  item → log(value) + rate·t_ref (zset)
    P{u:<user>}:x  items out of the user's feed (set)
    P{?:<id>}:seen:<signal id>  de-duplication marker    P{g}:hot  item → latest signal time (zset)
                                                         P{g}:ver  item → engagement version (hash)

Exactly once: every signal is one Lua call (`redis_scripts`). On standalone Redis that call does
everything — marker `SET NX EX dedupe_ttl`, user, item, author, top/hot — atomically, so a crash
or redelivery can neither lose nor double a part. On a Cluster the parts live in different slots:
the user part and each entity part carry their own marker in their own slot, and the top/hot
update is idempotent (it takes the entity's state and version and ignores stale versions), so a
redelivery after a crash between parts completes exactly the missing parts; the one residual is
that a signal interrupted between parts is half-visible until it is redelivered.

Writes for a batch go in one pipeline (one round trip standalone; one per node and phase on a
Cluster). Windows prune their own expired buckets and expire whole when idle.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from itertools import compress
from typing import Any

import numpy as np

from overdrive.domain.codec import decode_signal, encode_signal
from overdrive.domain.context import (
    ALL_CONTEXTS,
    NO_CONTEXT,
    PROFILE_KEYS,
    device_key,
    of_signal,
    signal_keys,
    timeline,
    week_of,
)
from overdrive.domain.decay import decay_rate, decayed, decayed_many
from overdrive.domain.types import Item, RankingReads, Session, Signal, UserActivity, UserModel
from overdrive.domain.weighting import SignalWeighting
from overdrive.domain.windows import COARSE_BUCKET_S, WINDOWS_S, WindowCounts, velocity
from overdrive.store.feature_config import FeatureConfig
from overdrive.store.redis_conn import RedisConnection, unavailable
from overdrive.store.redis_scripts import ENGAGEMENT_READ_SCRIPT, INTERESTS_READ_SCRIPT, SIGNAL_SCRIPT

_HOT_PRUNE_EVERY_S = 60.0  # how often the hot set drops items quiet for an hour
_VELOCITY_CACHE_S = 2.0  # how long a replica reuses an item's velocity (as the memory store's top list lags)
_VELOCITY_CACHE_ITEMS = 100_000
_KINDS = {"item": "i", "author": "a", "user": "u"}


def escape(entity_id: str) -> str:
    """An id as it appears inside a hash tag: no braces, reversibly."""
    return entity_id.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def _glob_literal(text: str) -> str:
    """`text` matched literally by a Redis glob pattern (SCAN MATCH)."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def check_prefix(prefix: str) -> str:
    if "{" in prefix or "}" in prefix:
        raise ValueError(f"redis key prefix {prefix!r} must not contain braces")
    return prefix


def _f(x: float) -> str:
    return repr(float(x))


def _windows(fine: Mapping[bytes, bytes], coarse: Mapping[bytes, bytes]) -> WindowCounts:
    return WindowCounts(fine=_buckets(fine), coarse=_buckets(coarse))


def _buckets(raw: Mapping[bytes, bytes]) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for field, value in raw.items():
        kind, start = field[:1], field[1:]
        if kind == b"c":
            out.setdefault(int(start), [0.0, 0.0])[0] = float(value)
        elif kind == b"w":
            out.setdefault(int(start), [0.0, 0.0])[1] = float(value)
    return out


class RedisFeatureStore:
    def __init__(self, *, connection: RedisConnection, config: FeatureConfig, prefix: str = "overdrive:") -> None:
        self._r = connection
        self._cfg = config
        self._p = check_prefix(prefix)
        self._weighting = SignalWeighting(config.signal_weights)
        self._eng_rate = decay_rate(config.engagement_half_life_s)
        self._long_rate = decay_rate(config.interest_half_life_s)
        self._short_rate = decay_rate(config.short_term_half_life_s)
        self._medium_rate = decay_rate(config.medium_term_half_life_s)
        self._week_ttl = (config.timeline_weeks + 1) * 7 * 86_400
        self._dedupe_ttl = max(1, math.ceil(config.dedupe_ttl_s))
        self._sha = connection.script(SIGNAL_SCRIPT)
        self._engagement_sha = connection.script(ENGAGEMENT_READ_SCRIPT)
        self._interests_sha = connection.script(INTERESTS_READ_SCRIPT)
        self._top, self._hot, self._ver = (f"{self._p}{{g}}:{n}" for n in ("top", "hot", "ver"))
        self._hot_pruned_at = 0.0
        self._velocity_cache: dict[str, tuple[float | None, float]] = {}  # item -> (velocity or None, at)

    # ------------------------------------------------------------------------------ keys

    def _key(self, kind: str, entity_id: str, suffix: str) -> str:
        return f"{self._p}{{{kind}:{escape(entity_id)}}}:{suffix}"

    def _user_keys(self, user_id: str) -> list[str]:
        return [self._key("u", user_id, s) for s in ("c", "s", "r", "wf", "wc", "il", "is", "x", "im", "hb")]

    def _signal_user_keys(self, s: Signal, context_profile: str) -> list[str]:
        """The user's keys a signal writes: theirs, this week's engagement, its context profile and
        its device's all-day profile (the context profile again without a device)."""
        return [*self._user_keys(s.user_id), self._key("u", s.user_id, f"wk:{week_of(s.timestamp)}"),
                self._key("u", s.user_id, f"cp:{context_profile}"),
                self._key("u", s.user_id, f"cp:{device_key(context_profile) or context_profile}")]

    def _prior_key(self, context_profile: str) -> str:
        return f"{self._p}{{g}}:cp:{context_profile}"

    def _entity_keys(self, kind: str, entity_id: str) -> list[str]:
        return [self._key(kind, entity_id, s) for s in ("e", "wf", "wc")]

    def _marker(self, kind: str, entity_id: str, signal_id: str | None) -> str:
        return self._key(kind, entity_id, f"seen:{signal_id or ''}")

    # ----------------------------------------------------------------------------- writes

    async def apply(self, signals: Sequence[Signal], items: Mapping[str, Item], *, now: float | None = None) -> list[Signal]:
        now = time.time() if now is None else now
        if not signals:
            return []
        if self._r.cluster:
            applied = await self._apply_cluster(signals, items, now)
        else:
            replies = await self._r.execute([self._full(s, items.get(s.content_id), now) for s in signals])
            applied = [s for s, r in zip(signals, replies, strict=True) if r == 1]
        await self._prune_hot(now)
        return applied

    def _argv(self, op: str, s: Signal, item: Item | None, now: float, habits: list[str], in_context: bool) -> list[Any]:
        author = item.author_id if item is not None else None
        feats = list(item.features()) if item is not None else []
        ttl = self._dedupe_ttl if s.signal_id is not None else 0
        return [
            op, ttl, _f(s.timestamp), _f(self._weighting.strength(s)), _f(now),
            _f(self._eng_rate), _f(self._long_rate), _f(self._short_rate),
            _f(self._cfg.session_gap_s), self._cfg.recent_per_user, s.signal_type,
            _f(s.timestamp).encode() + b" " + encode_signal(s), s.content_id, "1" if author else "0",
            "1" if s.signal_type in self._cfg.excluding_signal_types else "0", _f(self._medium_rate),
            self._week_ttl, len(habits), *habits, "1" if in_context else "0", *feats,
        ]

    @staticmethod
    def _context_of(s: Signal) -> tuple[list[str], str]:
        """The signal's habit keys and its context profile (`NO_CONTEXT` when it has none)."""
        context = of_signal(s.metadata) if s.metadata else None
        if context is None:
            return [], NO_CONTEXT
        return signal_keys(context, s.timestamp)

    def _full(self, s: Signal, item: Item | None, now: float) -> list[Any]:
        author = item.author_id if item is not None else None
        item_keys = self._entity_keys("i", s.content_id)
        habits, profile = self._context_of(s)
        keys = [
            self._marker("u", s.user_id, s.signal_id), *self._signal_user_keys(s, profile), *item_keys,
            *(self._entity_keys("a", author) if author else item_keys), self._top, self._hot, self._ver,
            self._prior_key(profile), self._prior_key(ALL_CONTEXTS),
        ]
        return ["EVALSHA", self._sha, len(keys), *keys,
                *self._argv("full", s, item, now, habits, profile != NO_CONTEXT and item is not None)]

    async def _apply_cluster(self, signals: Sequence[Signal], items: Mapping[str, Item], now: float) -> list[Signal]:
        """Per-slot parts, each with its own marker; then the idempotent top/hot update."""
        commands: list[list[Any]] = []
        priors: list[list[Any]] = []
        for s in signals:
            item = items.get(s.content_id)
            habits, profile = self._context_of(s)
            in_context = profile != NO_CONTEXT and item is not None
            keys = [self._marker("u", s.user_id, s.signal_id), *self._signal_user_keys(s, profile)]
            commands.append(["EVALSHA", self._sha, len(keys), *keys, *self._argv("user", s, item, now, habits, in_context)])
            keys = [self._marker("i", s.content_id, s.signal_id), *self._entity_keys("i", s.content_id)]
            commands.append(["EVALSHA", self._sha, len(keys), *keys, *self._argv("entity", s, item, now, [], False)])
            if item is not None and item.author_id:
                keys = [self._marker("a", item.author_id, s.signal_id), *self._entity_keys("a", item.author_id)]
                commands.append(["EVALSHA", self._sha, len(keys), *keys, *self._argv("entity", s, item, now, [], False)])
            w = self._weighting.strength(s)
            if in_context and w != 0.0:
                marker = f"{self._p}{{g}}:ps:{escape(s.signal_id or '')}"
                ttl = self._dedupe_ttl if s.signal_id is not None else 0
                priors.append(["EVALSHA", self._sha, 3, marker, self._prior_key(profile), self._prior_key(ALL_CONTEXTS), "prior", ttl,
                               _f(s.timestamp), _f(w), _f(self._long_rate), *item.features()])
        replies = iter(await self._r.execute(commands))
        applied, updates = [], []
        for s in signals:
            if next(replies) == 1:
                applied.append(s)
            _, v, t, n = next(replies)
            hot = _f(s.timestamp) if s.timestamp >= now - WINDOWS_S["1h"] else ""
            updates.append(["EVALSHA", self._sha, 3, self._top, self._hot, self._ver,
                            "global", s.content_id, v, t, n, _f(self._eng_rate), hot])
            item = items.get(s.content_id)
            if item is not None and item.author_id:
                next(replies)
        await self._r.execute(updates + priors)
        return applied

    async def _prune_hot(self, now: float) -> None:
        """Like the memory store's sweep: forget items with no signal in the last hour."""
        wall = time.monotonic()
        if wall - self._hot_pruned_at < _HOT_PRUNE_EVERY_S:
            return
        self._hot_pruned_at = wall
        await self._r.execute([["ZREMRANGEBYSCORE", self._hot, "-inf", f"({_f(now - WINDOWS_S['1h'])}"]])

    async def forget_item(self, item_id: str) -> None:
        await self._r.execute([
            ["DEL", *self._entity_keys("i", item_id)],
            ["ZREM", self._top, item_id], ["ZREM", self._hot, item_id], ["HDEL", self._ver, item_id],
        ])

    async def forget_user(self, user_id: str, signals: Sequence[Signal], items: Mapping[str, Item]) -> None:
        """Every key in the user's hash slot (`P{u:<user>}:*`: state, markers, watermarks), and on a
        Cluster the markers each signal left in its item's and author's slot."""
        pattern = _glob_literal(f"{self._p}{{u:{escape(user_id)}}}:") + "*"
        with unavailable():
            keys = [k async for k in self._r.client.scan_iter(match=pattern, count=1000)]
        markers = []
        for s in signals if self._r.cluster else ():
            if s.signal_id is not None:
                markers.append(self._marker("i", s.content_id, s.signal_id))
                author = items.get(s.content_id)
                if author is not None and author.author_id:
                    markers.append(self._marker("a", author.author_id, s.signal_id))
        await self._r.execute([["DEL", key] for key in [*keys, *markers]])

    # ------------------------------------------------------------------------------ reads

    async def item_engagement(self, item_ids: Sequence[str], *, now: float) -> dict[str, float]:
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return {}
        out = self._engagement_from(ids, await self._r.execute(self._engagement_reads(ids)), now)
        return {i: out[i] for i in item_ids if i in out}

    def _engagement_reads(self, ids: list[str]) -> list[list[Any]]:
        keys = [self._key("i", i, "e") for i in ids]
        if self._r.cluster:  # the keys live in many slots: one HMGET each
            return [["HMGET", k, "v", "t"] for k in keys]
        return [["EVALSHA", self._engagement_sha, len(keys), *keys]]  # all in one call (ENGAGEMENT_READ_SCRIPT)

    def _engagement_from(self, ids: list[str], replies: list[Any], now: float) -> dict[str, float]:
        """Decayed engagement per id from the replies to `_engagement_reads(ids)`."""
        if self._r.cluster:
            return {item_id: decayed(float(v), float(t), now, self._eng_rate)
                    for item_id, (v, t) in zip(ids, replies, strict=True) if v is not None}
        pairs = np.frombuffer(replies[0], dtype="<f8").reshape(len(ids), 2)
        engaged = ~np.isnan(pairs[:, 0])
        values = decayed_many(pairs[engaged, 0], pairs[engaged, 1], now, self._eng_rate)
        return dict(zip(compress(ids, engaged.tolist()), values.tolist(), strict=True))

    async def top_engaged(self, limit: int, *, now: float) -> list[str]:
        if limit <= 0:
            return []
        (ids,) = await self._r.execute([["ZREVRANGEBYSCORE", self._top, "+inf", "-inf", "LIMIT", 0, limit]])
        return [i.decode() for i in ids]

    async def item_velocity(self, item_ids: Sequence[str], *, now: float) -> dict[str, float]:
        """Cached per item for `_VELOCITY_CACHE_S`: a hot item's velocity reads its whole day of
        minute buckets (up to 1,440 fields), which would otherwise dominate every ranking."""
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return {}
        cache, out = self._velocity_cache, {}
        stale = []
        for i in ids:
            hit = cache.get(i)
            if hit is not None and 0.0 <= now - hit[1] < _VELOCITY_CACHE_S:
                if hit[0] is not None:
                    out[i] = hit[0]
            else:
                stale.append(i)
        if stale:
            (scores,) = await self._r.execute([["ZMSCORE", self._hot, *stale]])
            hot = [i for i, score in zip(stale, scores, strict=True) if score is not None]
            fresh = await self._velocities(hot, now)
            out.update(fresh)
            if len(cache) > _VELOCITY_CACHE_ITEMS:
                cache.clear()
            cache.update((i, (fresh.get(i), now)) for i in stale)
        return out

    async def trending(self, limit: int, *, now: float) -> list[tuple[str, float]]:
        since = now - WINDOWS_S["1h"] - COARSE_BUCKET_S  # older latest signals cannot be in the hour
        (ids,) = await self._r.execute([["ZRANGEBYSCORE", self._hot, _f(since), "+inf"]])
        scored = await self._velocities([i.decode() for i in ids], now, need_recent=True)
        best = sorted(((v, i) for i, v in scored.items()), reverse=True)[: max(0, limit)]
        return [(i, v) for v, i in best]

    async def _velocities(self, ids: list[str], now: float, *, need_recent: bool = False) -> dict[str, float]:
        replies = await self._r.execute([["HGETALL", self._key("i", i, "wc")] for i in ids])
        out = {}
        for item_id, raw in zip(ids, replies, strict=True):
            w = WindowCounts(coarse=_buckets(raw))
            c1 = w.window("1h", now)[0]
            if c1 or not need_recent:
                out[item_id] = velocity(c1, w.window("24h", now)[0])
        return out

    async def windows(self, kind: str, entity_id: str, *, now: float) -> dict[str, dict[str, float]]:
        short = _KINDS.get(kind)
        if short is None:
            raise ValueError(f"unknown entity kind {kind!r}")
        fine, coarse = await self._r.execute([
            ["HGETALL", self._key(short, entity_id, "wf")], ["HGETALL", self._key(short, entity_id, "wc")],
        ])
        return _windows(fine, coarse).all_windows(now)

    async def user_interests(self, user_id: str, *, now: float, term: str = "long") -> dict[str, float]:
        key, rate = {"short": ("is", self._short_rate), "medium": ("im", self._medium_rate),
                     "long": ("il", self._long_rate)}[term]
        ((names, pairs),) = await self._r.execute([self._interests_read(user_id, key)])
        return _profile(names, pairs, now, rate)

    async def user_model(self, user_id: str, *, now: float) -> UserModel:
        contexts = list(PROFILE_KEYS)
        weeks = timeline(now, self._cfg.timeline_weeks)
        profiles, medium, *week_rows = await self._r.execute([
            self._interests_read(user_id, "hb", *(f"cp:{c}" for c in contexts)),
            self._interests_read(user_id, "im"),
            *(["HGETALL", self._key("u", user_id, f"wk:{w}")] for w in weeks),
        ])
        habits = _profile(profiles[0], profiles[1], now, self._long_rate)
        in_contexts = {c: _profile(profiles[2 + 2 * n], profiles[3 + 2 * n], now, self._long_rate)
                       for n, c in enumerate(contexts)}
        return UserModel(
            devices=_prefixed(habits, "dev:"), timezones=_prefixed(habits, "tz:"), hours=_prefixed(habits, "hr:"),
            locations={**_prefixed(habits, "loc:"), **_prefixed(habits, "city:")},
            contexts={c: p for c, p in in_contexts.items() if p},
            weeks={w: {k.decode(): float(v) for k, v in row.items()} for w, row in zip(weeks, week_rows, strict=True) if row},
            medium_interests=_profile(medium[0], medium[1], now, self._medium_rate),
        )

    def _interests_read(self, user_id: str, *profiles: str) -> list[Any]:
        keys = [self._key("u", user_id, p) for p in profiles]
        return ["EVALSHA", self._interests_sha, len(keys), *keys]  # INTERESTS_READ_SCRIPT

    async def user_signal_total(self, user_id: str) -> int:
        (counts,) = await self._r.execute([["HVALS", self._key("u", user_id, "c")]])
        return sum(map(int, counts))

    async def user_activity(self, user_id: str, *, now: float) -> UserActivity:
        counts, sess, recent = await self._r.execute([
            ["HGETALL", self._key("u", user_id, "c")],
            ["HMGET", self._key("u", user_id, "s"), "start", "last", "n", "total"],
            ["LRANGE", self._key("u", user_id, "r"), 0, -1],
        ])
        if not counts:
            return UserActivity(signal_counts={}, recent=[], session=None, sessions_total=0)
        start, last, n, total = sess
        return UserActivity(
            signal_counts={k.decode(): int(v) for k, v in counts.items()},
            recent=[decode_signal(r[r.index(b" ") + 1 :]) for r in recent],
            session=Session(started_at=float(start), last_signal_at=float(last), signals=int(n)),
            sessions_total=int(total),
        )

    async def excluded_items(self, user_id: str, item_ids: Sequence[str]) -> set[str]:
        if not item_ids:
            return set()
        (flags,) = await self._r.execute([["SMISMEMBER", self._key("u", user_id, "x"), *item_ids]])
        return {i for i, f in zip(item_ids, flags, strict=True) if f}

    async def ranking_reads(self, user_id: str, item_ids: Sequence[str], *, now: float,
                            context: str | None = None) -> RankingReads:
        ids = list(dict.fromkeys(item_ids))
        per_item = [["SMISMEMBER", self._key("u", user_id, "x"), *ids], *self._engagement_reads(ids)] if ids else []
        device = device_key(context) if context else None
        profiles = ("il", "is", *((f"cp:{context}", f"cp:{device or context}") if context else ()))
        interests, counts, *replies = await self._r.execute([
            self._interests_read(user_id, *profiles),
            ["HVALS", self._key("u", user_id, "c")],
            *per_item,
        ])
        return RankingReads(
            excluded={i for i, f in zip(ids, replies[0], strict=True) if f} if ids else set(),
            engagement=self._engagement_from(ids, replies[1:], now) if ids else {},
            long_interests=_profile(interests[0], interests[1], now, self._long_rate),
            short_interests=_profile(interests[2], interests[3], now, self._short_rate),
            signal_total=sum(map(int, counts)),
            context_interests=_profile(interests[4], interests[5], now, self._long_rate) if context else {},
            device_interests=_profile(interests[6], interests[7], now, self._long_rate) if device else {},
        )

    async def context_prior(self, context: str, *, now: float) -> tuple[dict[str, float], dict[str, float]]:
        (everyone,) = await self._r.execute([
            ["EVALSHA", self._interests_sha, 2, self._prior_key(context), self._prior_key(ALL_CONTEXTS)]])
        return (_profile(everyone[0], everyone[1], now, self._long_rate),
                _profile(everyone[2], everyone[3], now, self._long_rate))


def _prefixed(values: Mapping[str, float], prefix: str) -> dict[str, float]:
    return {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)}


def _profile(names: list[bytes], pairs: bytes, now: float, rate: float) -> dict[str, float]:
    """An interest profile as INTERESTS_READ_SCRIPT returns it: feature -> decayed value."""
    packed = np.frombuffer(pairs, dtype="<f8").reshape(len(names), 2)
    values = decayed_many(packed[:, 0], packed[:, 1], now, rate)
    return dict(zip((n.decode() for n in names), values.tolist(), strict=True))
