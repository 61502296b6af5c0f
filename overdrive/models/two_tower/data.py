"""Training data: signals → per-user event arrays → (user, target item, history) examples.

An *event* is one signal with a non-zero strength (type weight × intensity × dwell bonus from
`SignalWeighting`; negative types give negative strengths). Events are grouped by user and sorted
by time. A *target* is a (user, item) pair whose summed strength is positive; it happens at the
index of the pair's first event. Pairs with a negative sum are the user's explicit negatives.

Histories, newest first, at most `max_history` events:
- `causal`: the events right before the target (what the live store would have held then);
- `bag`: a random sample of the user's other events up to a time limit (the ensemble member's
  mode: an interaction matrix has no order).
The time holdout: targets whose first event is at or after the (1 − fraction) quantile of target
times are held out; each validation user's history is what they did before that time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from overdrive.models.two_tower.features import (
    position_bucket,
    recency_bucket,
    strength_scale,
)


@dataclass(slots=True)
class Events:
    """Events sorted by (user, time); user u's events are [start[u], start[u + 1])."""

    user: np.ndarray  # int64 user position (0-based, into the model's user list)
    item: np.ndarray  # int64 catalog position
    type: np.ndarray  # int64 type row (0: unknown)
    strength: np.ndarray  # float32, signed, never 0
    ts: np.ndarray  # float64 epoch seconds, NaN when unknown (matrix rows)
    start: np.ndarray  # int64 (n_users + 1,)
    ordered: bool = True  # False: no times (matrix rows, sorted weakest to strongest; no recency or rank)

    @classmethod
    def build(cls, user, item, type_, strength, ts, n_users: int) -> Events:
        """Events sorted by (user, time); without any time, by (user, |strength|), so that the
        "newest" events a history takes first are the strongest."""
        user, item = np.asarray(user, np.int64), np.asarray(item, np.int64)
        type_, strength = np.asarray(type_, np.int64), np.asarray(strength, np.float32)
        ts = np.asarray(ts, np.float64)
        keep = strength != 0
        user, item, type_, strength, ts = user[keep], item[keep], type_[keep], strength[keep], ts[keep]
        ordered = bool(np.isfinite(ts).any())
        key = np.nan_to_num(ts, nan=-np.inf) if ordered else np.abs(strength)
        order = np.lexsort((np.arange(user.size), key, user))
        counts = np.bincount(user, minlength=n_users)
        start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(user[order], item[order], type_[order], strength[order], ts[order], start, ordered)

    def select(self, mask: np.ndarray) -> Events:
        """The events where `mask` is True (order kept)."""
        n_users = self.start.size - 1
        counts = np.bincount(self.user[mask], minlength=n_users)
        start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return Events(self.user[mask], self.item[mask], self.type[mask], self.strength[mask], self.ts[mask], start,
                      self.ordered)

    def __len__(self) -> int:
        return int(self.user.size)


@dataclass(slots=True)
class Targets:
    user: np.ndarray  # int64
    item: np.ndarray  # int64
    first: np.ndarray  # int64 index (into Events) of the pair's first event
    ts: np.ndarray  # float64 time of that event (NaN when unknown)
    strength: np.ndarray  # float32 net strength (> 0)

    def select(self, idx: np.ndarray) -> Targets:
        return Targets(self.user[idx], self.item[idx], self.first[idx], self.ts[idx], self.strength[idx])

    def __len__(self) -> int:
        return int(self.user.size)


def pairs(events: Events, n_items: int) -> tuple[Targets, np.ndarray, np.ndarray]:
    """(positive targets, negative-pair users, negative-pair items) from the events."""
    key = events.user * n_items + events.item
    uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    net = np.bincount(inverse, weights=events.strength, minlength=uniq.size)
    pos = net > 0
    users, items = uniq // n_items, uniq % n_items
    targets = Targets(users[pos], items[pos], first[pos], events.ts[first[pos]], net[pos].astype(np.float32))
    neg = net < 0
    return targets, users[neg], items[neg]


def time_holdout(targets: Targets, fraction: float) -> float | None:
    """The time at or after which targets are held out for validation (None: no holdout)."""
    ts = targets.ts[np.isfinite(targets.ts)]
    if fraction <= 0 or ts.size < 20:
        return None
    cut = float(np.quantile(ts, 1.0 - fraction))
    return cut if (ts < cut).any() and (ts >= cut).any() else None


@dataclass(slots=True)
class History:
    """Padded newest-first histories, (B, L) each; `valid` marks real entries."""

    item: np.ndarray
    type: np.ndarray
    rec: np.ndarray
    pos: np.ndarray
    w: np.ndarray  # log1p|strength|
    sign: np.ndarray  # float32 in {1, -1, 0}
    valid: np.ndarray


def causal_history(events: Events, users: np.ndarray, end: np.ndarray, ref_ts: np.ndarray, length: int) -> History:
    """The `length` events of each user right before index `end` (exclusive), newest first; ages
    are measured at `ref_ts`."""
    offsets = np.arange(length)
    idx = end[:, None] - 1 - offsets[None, :]
    valid = idx >= events.start[users][:, None]
    return _gather(events, np.where(valid, idx, 0), valid, ref_ts, np.broadcast_to(offsets, idx.shape))


def bag_history(events: Events, users: np.ndarray, limit: np.ndarray, targets: np.ndarray | None, length: int,
                rng: np.random.Generator) -> History:
    """Up to `length` random events of each user before index `limit` (exclusive), excluding the
    row's target item; ages measured at the user's latest event before `limit`."""
    start = events.start[users]
    n = limit - start
    small = n <= length
    offsets = np.arange(length)
    draw = (rng.random((users.size, length)) * np.maximum(n, 1)[:, None]).astype(np.int64)
    pick = np.where(small[:, None], offsets[None, :], draw)
    valid = pick < n[:, None]
    idx = np.where(valid, start[:, None] + pick, 0)
    if targets is not None:
        valid &= events.item[idx] != targets[:, None]
    last = np.maximum(limit - 1, 0)
    ref_ts = np.where(n > 0, events.ts[last], np.nan)
    rank = np.maximum(limit[:, None] - 1 - idx, 0)
    return _gather(events, idx, valid, ref_ts, rank)


def _gather(events: Events, idx: np.ndarray, valid: np.ndarray, ref_ts: np.ndarray, rank: np.ndarray) -> History:
    strength = events.strength[idx]
    if events.ordered:
        age = np.asarray(ref_ts, np.float64)[:, None] - events.ts[idx]
        rec, pos = np.where(valid, recency_bucket(age), 0), np.where(valid, position_bucket(rank), 0)
    else:
        rec = pos = np.zeros(idx.shape, dtype=np.int64)
    return History(
        item=np.where(valid, events.item[idx], 0),
        type=np.where(valid, events.type[idx], 0),
        rec=rec,
        pos=pos,
        w=np.where(valid, strength_scale(strength), 0.0).astype(np.float32),
        sign=np.where(valid, np.sign(strength), 0.0).astype(np.float32),
        valid=valid,
    )


def first_index_at_or_after(events: Events, cut: float) -> np.ndarray:
    """Per user, the index of their first event at or after `cut` (their end when none)."""
    n_users = events.start.size - 1
    out = events.start[1:].copy()
    late = np.flatnonzero(np.nan_to_num(events.ts, nan=-np.inf) >= cut)
    if late.size:
        users = events.user[late]
        first = np.full(n_users, np.iinfo(np.int64).max)
        np.minimum.at(first, users, late)
        has = first < np.iinfo(np.int64).max
        out[has] = first[has]
    return out
