"""The Scorer seam and the scorers that work from stored signals alone.

A scorer returns one score per candidate, aligned with the input, in [-1, 1] (negative means
"evidence against"), or None when it has nothing to say for this request; the blend then leaves
its component out and renormalises the other weights. What they need of live state comes in the
ranking's `RankingReads`, read once for all scorers (one round trip on Redis; only velocity, cached
per item, is read on its own). Scorers work on whole candidate arrays (numpy): a ranking scores
100+ items with five scorers, and per-item Python is its largest cost.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Protocol

import numpy as np

from overdrive.domain.decay import decay_rate
from overdrive.domain.item_numbers import ItemColumn, item_numbers
from overdrive.domain.types import Item, RankingReads
from overdrive.store.protocols import FeatureStore

Scores = np.ndarray | Sequence[float]


class ContentModel(Protocol):
    async def score(self, user_id: str, items: Sequence[Item], now: float, *, signal_total: int) -> Scores | None: ...


class CollaborativeModel(Protocol):
    async def score(self, user_id: str, item_ids: Sequence[str]) -> Scores | None: ...


class Scorer(Protocol):
    name: str

    async def score(self, user_id: str, items: Sequence[Item], now: float, reads: RankingReads) -> Scores | None: ...


class _LastIds:
    """The ids of a list of items, worked out once per list: a ranking hands the same list to
    every scorer, and listing 4,000 ids costs each ~0.3 ms. The list must not change in place
    while it is being ranked (the ranker builds a new one to filter). Not thread-safe: scorers run
    on the event loop (a race only recomputes)."""

    def __init__(self) -> None:
        self._last: tuple[Sequence[Item], int, list[str]] | None = None

    def __call__(self, items: Sequence[Item]) -> list[str]:
        last = self._last
        if last is not None and last[0] is items and last[1] == len(items):
            return last[2]
        ids = [i.id for i in items]
        self.known(items, ids)
        return ids

    def known(self, items: list[Item], ids: list[str]) -> list[Item]:
        """`items`, whose ids the caller already listed (`ids`, in order): remembered as theirs."""
        self._last = (items, len(ids), ids)
        return items


ids_of = _LastIds()


def _scale_by_max_abs(values: np.ndarray) -> np.ndarray | None:
    peak = float(np.abs(values).max()) if len(values) else 0.0
    if peak == 0.0:
        return None
    return values / peak


def _lookup(table: dict[str, float], ids: Sequence[str], default: float) -> np.ndarray:
    """`table[id]` for each id (`default` where missing) as an array; the lookups run in C."""
    return np.fromiter(map(table.get, ids, repeat(default)), dtype=np.float64, count=len(ids))


class EngagementScorer:
    """`real_time`: decayed weighted engagement, lifted by velocity (trending against its own day).

    Both parts are log-scaled against the best candidate; velocity adds at most a quarter.
    """

    name = "real_time"
    _VELOCITY_SHARE = 0.25

    def __init__(self, features: FeatureStore) -> None:
        self._features = features

    async def score(self, user_id: str, items: Sequence[Item], now: float, reads: RankingReads) -> np.ndarray | None:
        if not reads.engagement:
            return None
        ids = ids_of(items)
        e = _lookup(reads.engagement, ids, 0.0)
        engagement = _scale_by_max_abs(np.sign(e) * np.log1p(np.abs(e)))
        if engagement is None:
            return None
        vel = await self._features.item_velocity(ids, now=now)
        lift = _scale_by_max_abs(np.log(np.maximum(_lookup(vel, ids, 1.0), 1.0))) if vel else None
        if lift is None:
            return engagement
        share = self._VELOCITY_SHARE
        return (1 - share) * engagement + share * lift


class ContentScorer:
    """`content_based`: cosine of each item's fused content embedding with the user's long- and
    short-term interest embeddings; cold items (never interacted with) rank by content alone."""

    name = "content_based"

    def __init__(self, model: ContentModel) -> None:
        self._model = model

    async def score(self, user_id: str, items: Sequence[Item], now: float, reads: RankingReads) -> Scores | None:
        return await self._model.score(user_id, items, now, signal_total=reads.signal_total)


class CollaborativeScorer:
    """`collaborative`: the CF ensemble's score, scaled so the best candidate scores 1.

    Cold users get the ensemble's popularity prior, cold items content-neighbour scores; with no
    trained model yet the component is left out.
    """

    name = "collaborative"

    def __init__(self, model: CollaborativeModel) -> None:
        self._model = model

    async def score(self, user_id: str, items: Sequence[Item], now: float, reads: RankingReads) -> np.ndarray | None:
        scores = await self._model.score(user_id, ids_of(items))
        if scores is None or len(scores) == 0:
            return None
        return _scale_by_max_abs(np.asarray(scores, dtype=np.float64))


class TwoTowerScorer:
    """`two_tower`: the cosine of the user's two-tower vector and each item's (the served
    ensemble's two-tower member; `overdrive.services.two_tower_service`). Left out when no
    two-tower model is served or it has no vector for the user yet."""

    name = "two_tower"

    def __init__(self, model: CollaborativeModel) -> None:
        self._model = model

    async def score(self, user_id: str, items: Sequence[Item], now: float, reads: RankingReads) -> np.ndarray | None:
        scores = await self._model.score(user_id, ids_of(items))
        return None if scores is None or len(scores) == 0 else np.asarray(scores, dtype=np.float64)


class FreshnessScorer:
    """`freshness`: 2^(-age / half-life) from the item's `created_at`."""

    name = "freshness"

    def __init__(self, *, half_life_s: float, columns: FeatureColumns | None = None) -> None:
        self._rate = decay_rate(half_life_s)
        self._columns = columns or FeatureColumns()

    async def score(self, user_id: str, items: Sequence[Item], now: float, reads: RankingReads) -> np.ndarray | None:
        created = self._columns.created_at(items)
        missing = np.isnan(created)
        if missing.all():
            return None
        fresh = np.exp(-self._rate * np.maximum(0.0, now - created))
        fresh[missing] = 0.0
        return fresh


class InterestScorer:
    """`user_interests`: the user's affinity to each item's tags, author and media type.

    Cosine between a feature profile and the item's binary feature vector, for the long-term
    profile (weeks) and the short-term one (this hour). The short-term cosine counts in proportion
    to how much recent evidence there is (1 - e^-mass, mass = the profile's decayed total), so a
    session's fresh interest shows at once and fades within hours. The sum is scaled so the
    best-matching candidate scores 1 (or -1 for the most disliked).
    """

    name = "user_interests"

    def __init__(self, columns: FeatureColumns | None = None) -> None:
        self._columns = columns or FeatureColumns()

    async def score(self, user_id: str, items: Sequence[Item], now: float, reads: RankingReads) -> np.ndarray | None:
        if not (reads.long_interests or reads.short_interests):
            return None
        columns = self._columns.of(items)  # every item has a feature: its media type
        long = self._columns.cosine(columns, reads.long_interests)
        short = self._columns.cosine(columns, reads.short_interests)
        totals = np.zeros(len(items))
        if long is not None:
            totals += long[0]
        if short is not None:
            totals += (1.0 - math.exp(-short[1])) * short[0]
        return _scale_by_max_abs(totals) if long is not None or short is not None else None


class ContextScorer:
    """`context`: how much more (or less) than usual the item's features are engaged in the
    request's context (device class and daypart), as a log lift averaged over its features.
    Everyone's lift of a feature is (engagement in the context + a) / (what its share of all
    contexts predicts + a), so a feature seldom seen stays near no lift; the user's own is theirs
    on the device at any hour against their usual share, with everyone's lift as b of prior
    evidence, then theirs in the context with that as the prior.
    A lift says what to prefer *here* among what the other components find relevant. Items local
    to the request's country get a boost (a lift of e^0.5)."""

    name = "context"
    _LOCAL_BOOST = 0.5
    _EVERYONE_PSEUDO = 50.0  # a: prior evidence (decayed signal strength) of no lift, per feature
    _USER_PSEUDO = 10.0  # b: prior evidence of everyone's lift, per feature

    def __init__(self, columns: FeatureColumns | None = None) -> None:
        self._columns = columns or FeatureColumns()
        self._lifts: tuple[Mapping[str, float], Mapping[str, float], dict[str, float]] | None = None

    async def score(self, user_id: str, items: Sequence[Item], now: float, reads: RankingReads) -> np.ndarray | None:
        totals = self._lifted(items, reads) if reads.context_baseline else None
        country = reads.context.country if reads.context is not None else None
        if country:
            local = [n for n, item in enumerate(items) if item.metadata and _country(item) == country]
            if local:
                totals = np.zeros(len(items)) if totals is None else totals
                totals[local] += self._LOCAL_BOOST
        # On the lift's own scale (tanh: ±0.76 at e-fold), not stretched to the largest: where the
        # context says little, its scores stay small.
        return None if totals is None else np.tanh(totals)

    def _lifted(self, items: Sequence[Item], reads: RankingReads) -> np.ndarray | None:
        """Each item's mean log lift over its features (None: no lift anywhere)."""
        flat, lengths = self._columns.of(items)
        lift = self._columns.vector(self._everyones(reads.context_prior, reads.context_baseline), 1.0)[flat]
        usual = self._positive(flat, reads.long_interests)
        if usual is not None:
            b = self._USER_PSEUDO
            usual_share = usual[0] / usual[1]
            for profile in (reads.device_interests, reads.context_interests):  # the device's, then the context's
                mine = self._positive(flat, profile)
                if mine is not None:  # (the user's weight here + b × lift) / (what their usual share predicts + b):
                    lift = (mine[0] + b * lift) / (mine[1] * usual_share + b)  # the lift where both are 0
        logs = np.log(lift)  # every lift is positive: both pseudo-counts are
        return self._columns.per_item(logs, lengths) / lengths if logs.any() else None

    def _everyones(self, here: Mapping[str, float], everywhere: Mapping[str, float]) -> Mapping[str, float]:
        """Everyone's lift per feature in the context, computed once per (cached) pair of profiles."""
        if self._lifts is not None and self._lifts[0] is here and self._lifts[1] is everywhere:
            return self._lifts[2]
        total_here = sum(v for v in here.values() if v > 0)
        total = sum(v for v in everywhere.values() if v > 0)
        a = self._EVERYONE_PSEUDO
        lifts = {f: (max(here.get(f, 0.0), 0.0) + a) / (total_here * v / total + a)
                 for f, v in everywhere.items() if v > 0} if total > 0 else {}
        self._lifts = (here, everywhere, lifts)
        return lifts

    def _positive(self, flat: np.ndarray, profile: Mapping[str, float]) -> tuple[np.ndarray, float] | None:
        """Each feature column's positive weight in the profile, and the profile's positive mass."""
        if not profile:
            return None
        matched, weights = self._columns.weights_at(flat, profile)
        mass = float(np.maximum(weights, 0.0).sum())
        return (np.maximum(matched, 0.0), mass) if mass > 0.0 else None


def _country(item: Item) -> str | None:
    where = item.metadata.get("location") if item.metadata else None
    country = where.get("country") if isinstance(where, dict) else None
    return country.upper() if isinstance(country, str) else None


class FeatureColumns:
    """Item features as column numbers in one vocabulary, cached per item number (`item_numbers`)
    while the `Item` (frozen) is the very object it was cached from, as it is while the catalog
    hands out the same one: a ranking then gathers its candidates' columns and creation times with
    a few numpy calls instead of a dict lookup per item and feature. Each item's columns sit in one
    growing array (`_flat`, at `_start` for `_length`); it keeps each number's last `Item` alive
    (so that its `id()`, held in `_owner`, names it alone). Items without a number (not stored
    anywhere: a request's own) are worked out per call. Scorers may share one: a ranking hands
    every scorer the same list of items, whose columns are then worked out once. Not thread-safe:
    scorers run on the event loop."""

    _CAPACITY = 200_000  # items, and features; past either, or with mostly stale columns in `_flat`, it starts over

    def __init__(self) -> None:
        self._start_over()

    def _start_over(self) -> None:
        self._vocab: dict[str, int] = {}
        self._names: list[str] = []  # column -> feature
        self._held: dict[int, Item] = {}  # number -> the Item its columns were worked out from
        self._owner, self._start, self._length = ItemColumn(0, np.int64), ItemColumn(0, np.int64), ItemColumn(0, np.int64)
        self._created = ItemColumn(np.nan)
        self._flat = np.zeros(4096, dtype=np.intp)
        self._used = 0  # of `_flat`
        self._live = 0  # columns in `_flat` that a held item still owns
        self._scratch = np.zeros(1024)  # zero between calls (see `weights_at`)
        self._vectors: dict[int, tuple[Mapping[str, float], np.ndarray]] = {}  # see `vector`
        # the last `of`: (items, their number, (columns, lengths), where each item's columns start)
        self._last: tuple[Sequence[Item], int, tuple[np.ndarray, np.ndarray], np.ndarray] | None = None
        self._matched: deque[tuple[np.ndarray, Mapping[str, float], np.ndarray, np.ndarray]] = deque(maxlen=4)

    def of(self, items: Sequence[Item]) -> tuple[np.ndarray, np.ndarray]:
        """(every item's feature columns, concatenated; how many each item has)."""
        last = self._last
        if last is not None and last[0] is items and len(items) == last[1]:
            return last[2]
        if (len(self._held) > self._CAPACITY or len(self._vocab) > self._CAPACITY
                or self._used > 4 * self._live + 1_000_000):
            self._start_over()
        found = item_numbers.of(ids_of(items))
        stale = np.flatnonzero(self._owner.gather(found) != np.fromiter(map(id, items), dtype=np.int64, count=len(items)))
        own: dict[int, tuple[int, ...]] = {}  # position -> columns, for items without a number
        for k in stale.tolist():
            if found[k]:
                self._learn(items[k], int(found[k]))
            else:
                own[k] = tuple(map(self._column, items[k].features()))
        lengths = self._length.gather(found)
        starts = self._start.gather(found)
        if own:
            lengths[list(own)] = list(map(len, own.values()))
        offsets = np.cumsum(lengths) - lengths  # where each item's columns start in the answer
        total = int(lengths.sum())
        # `_flat[start + j]` for each item and each j < its length, in one gather
        columns = self._flat[np.repeat(starts - offsets, lengths) + np.arange(total)]
        for k, row in own.items():
            columns[offsets[k]: offsets[k] + len(row)] = row
        result = columns, lengths
        self._last = (items, len(items), result, offsets)
        return result

    def created_at(self, items: Sequence[Item]) -> np.ndarray:
        """Each item's `created_at` (nan where it has none), from the columns' cache."""
        if self._last is None or self._last[0] is not items:
            self.of(items)
        found = item_numbers.of(ids_of(items))
        created = self._created.gather(found)
        own = np.flatnonzero(found == 0)
        if len(own):
            created[own] = np.array([items[k].created_at for k in own.tolist()], dtype=np.float64)
        return created

    def _learn(self, item: Item, number: int) -> None:
        row = tuple(map(self._column, item.features()))
        if self._used + len(row) > len(self._flat):
            grown = np.zeros(max(2 * len(self._flat), self._used + len(row)), dtype=np.intp)
            grown[: self._used] = self._flat[: self._used]
            self._flat = grown
        if number in self._held:  # its old columns stay in `_flat`, unowned, until the cache starts over
            self._live -= int(self._length[number])
        self._flat[self._used: self._used + len(row)] = row
        self._start[number], self._length[number] = self._used, len(row)
        self._created[number] = np.nan if item.created_at is None else item.created_at
        self._owner[number] = id(item)
        self._held[number] = item
        self._used += len(row)
        self._live += len(row)

    def _column(self, feature: str) -> int:
        column = self._vocab.get(feature)
        if column is None:
            column = self._vocab[feature] = len(self._names)
            self._names.append(feature)
        return column

    def vector(self, values: Mapping[str, float], default: float) -> np.ndarray:
        """`values` (feature -> number) over the whole vocabulary, `default` where it has none;
        kept while the caller passes the very same mapping (e.g. a cached population profile), and
        only extended as the vocabulary grows: a large mapping costs once, not per ranking."""
        held = self._vectors.get(id(values))
        vector = held[1] if held is not None and held[0] is values else np.empty(0)
        if len(vector) < len(self._names):
            if len(self._vectors) > 16:
                self._vectors.clear()
            grown = np.fromiter((values.get(f, default) for f in self._names[len(vector):]), dtype=np.float64,
                                count=len(self._names) - len(vector))
            vector = np.concatenate([vector, grown])
            self._vectors[id(values)] = (values, vector)
        return vector

    def cosine(self, columns: tuple[np.ndarray, np.ndarray], profile: Mapping[str, float]) -> tuple[np.ndarray, float] | None:
        """Each item's cosine with `profile` (over binary item features), and the profile's mass
        (its decayed total); None for an empty or all-zero profile."""
        matched, weights = self.weights_at(columns[0], profile)
        norm = math.sqrt(float(weights @ weights))
        if norm == 0.0:
            return None
        return self.per_item(matched, columns[1]) / (norm * np.sqrt(columns[1])), float(np.abs(weights).sum())

    def per_item(self, values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The sum over each item's columns of `values` (one per column of `of`'s result)."""
        last = self._last
        starts = last[3] if last is not None and last[2][1] is lengths else np.cumsum(lengths) - lengths
        return np.add.reduceat(values, starts)

    def weights_at(self, columns: np.ndarray, profile: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """The profile's weight of each of `columns` (0 where it has none), and its weights in its
        own order. Remembered for the last few (columns, profile) pairs: scorers that read the same
        profile over the same items (user_interests and context both read the long-term one) match
        it once. The match is written into a reused vector over the vocabulary, read, and cleared."""
        for held in self._matched:
            if held[0] is columns and held[1] is profile:
                return held[2], held[3]
        weights = np.fromiter(profile.values(), dtype=np.float64, count=len(profile))
        # A feature no item has goes to the last slot, which is never an item's column.
        at = np.fromiter(map(self._vocab.get, profile, repeat(-1)), dtype=np.intp, count=len(profile))
        if len(self._scratch) <= len(self._vocab):
            self._scratch = np.zeros(max(len(self._vocab) + 1, 2 * len(self._scratch)))
        self._scratch[at] = weights
        matched = self._scratch[columns]
        self._scratch[at] = 0.0
        self._matched.appendleft((columns, profile, matched, weights))
        return matched, weights
