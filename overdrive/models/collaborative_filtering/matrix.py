"""Signals → one signed, decayed strength per (user, item) → a sparse implicit-feedback matrix.

Every signal's strength comes from `SignalWeighting` (configured type weight × intensity × dwell
bonus), is decayed by its age at `now` (half-life from settings) and summed per (user, item).
A net negative pair (skipped, hidden, reported) stays in the matrix with its sign: ALS reads it as
negative feedback, the other models ignore its value but never recommend the item back.
Ids are strings at the edges and dense integers inside.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from overdrive.domain.codec import item_from_dict, signal_from_dict
from overdrive.domain.types import Item, Signal
from overdrive.domain.weighting import SignalWeighting

SECONDS_PER_DAY = 86_400.0


def items_by_id(items: Iterable[Mapping[str, Any] | Item] | Mapping[str, Item] | None) -> dict[str, Item]:
    """Normalise any catalog input (mapping, list of `Item`s or of wire dicts) to {id: Item}."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return {str(k): item_from_dict(v) for k, v in items.items()}
    out: dict[str, Item] = {}
    for raw in items:
        item = item_from_dict(raw)
        out[item.id] = item
    return out


class SignalStrength:
    """Signed strength of one signal, decayed toward a reference time (`anchor`).

    `weight(s)` is strength × 2^((t - anchor) / half_life): at fit time the anchor is `now` so old
    signals fade; after fit, signals observed later weigh > 1 relative to the same anchor, which is
    the same ordering the next full fit (anchored later) will produce.
    """

    def __init__(self, *, signal_weights: Mapping[str, float], half_life_days: float | None) -> None:
        self._weighting = SignalWeighting(signal_weights)
        self._rate = 0.0 if not half_life_days else math.log(2.0) / (half_life_days * SECONDS_PER_DAY)

    def weight(self, signal: Signal, *, anchor: float) -> float:
        base = self._weighting.strength(signal)
        if base == 0.0 or self._rate == 0.0:
            return base
        # Clamp the exponent: far-future timestamps must not overflow, ancient ones simply vanish.
        return base * math.exp(max(-50.0, min(50.0, self._rate * (signal.timestamp - anchor))))


def _canonical(s: Signal) -> tuple:
    return (s.timestamp, s.user_id, s.content_id, s.signal_type, s.intensity,
            -1.0 if s.duration is None else s.duration)


@dataclass(frozen=True, slots=True)
class Interactions:
    """Signals aggregated to one row per (user, item): net decayed strength and last time seen.

    `user`/`item` index `user_ids`/`item_ids`; catalog items without interactions still have ids,
    so every split and model shares one item universe.
    """

    user_ids: list[str]
    item_ids: list[str]
    user: np.ndarray  # int32
    item: np.ndarray  # int32
    value: np.ndarray  # float32, signed
    last_ts: np.ndarray  # float64
    now: float

    def __len__(self) -> int:
        return int(self.user.size)

    def select(self, mask_or_index: np.ndarray) -> Interactions:
        """The same id universe with only the chosen rows."""
        return Interactions(
            self.user_ids, self.item_ids, self.user[mask_or_index], self.item[mask_or_index],
            self.value[mask_or_index], self.last_ts[mask_or_index], self.now,
        )


def aggregate_signals(
    signals: Iterable[Mapping[str, Any] | Signal],
    *,
    signal_weights: Mapping[str, float],
    half_life_days: float | None = 14.0,
    items: Iterable[str] = (),
    now: float | None = None,
) -> Interactions:
    """Sum each (user, item)'s signal strengths, decayed to `now` (default: the latest signal).

    Signals are taken in time order (ties in a fixed order), whatever order they come in: users
    and unlisted items get their ids in order of their first signal and each sum adds up in one
    order, so the matrix, and every model fitted on it, depends on the signals alone and not on
    the order the log stored them in (concurrent writers interleave their batches).
    """
    parsed = sorted((signal_from_dict(s) for s in signals), key=_canonical)
    if now is None:
        now = max((s.timestamp for s in parsed), default=0.0)
    strength = SignalStrength(signal_weights=signal_weights, half_life_days=half_life_days)
    user_index: dict[str, int] = {}
    item_index: dict[str, int] = {i: n for n, i in enumerate(dict.fromkeys(items))}
    sums: dict[tuple[int, int], float] = {}
    last: dict[tuple[int, int], float] = {}
    for s in parsed:
        u = user_index.setdefault(s.user_id, len(user_index))
        i = item_index.setdefault(s.content_id, len(item_index))
        key = (u, i)
        sums[key] = sums.get(key, 0.0) + strength.weight(s, anchor=now)
        if s.timestamp > last.get(key, -math.inf):
            last[key] = s.timestamp
    keys = np.array(list(sums), dtype=np.int64).reshape(-1, 2)
    return Interactions(
        user_ids=list(user_index),
        item_ids=list(item_index),
        user=keys[:, 0].astype(np.int32),
        item=keys[:, 1].astype(np.int32),
        value=np.fromiter(sums.values(), dtype=np.float32, count=len(sums)),
        last_ts=np.fromiter((last[k] for k in sums), dtype=np.float64, count=len(sums)),
        now=float(now),
    )


@dataclass(slots=True)
class InteractionMatrix:
    """Users × items CSR of signed net strengths, with the string ids of its rows and columns."""

    user_ids: list[str]
    item_ids: list[str]
    values: sp.csr_matrix  # float32, signed
    now: float = 0.0
    user_index: dict[str, int] = field(default_factory=dict)
    item_index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.values.shape != (len(self.user_ids), len(self.item_ids)):
            raise ValueError(f"values shape {self.values.shape} does not match the id lists")
        self.values = sp.csr_matrix(self.values, dtype=np.float32)
        self.values.sum_duplicates()
        self.values.eliminate_zeros()
        if not self.user_index:
            self.user_index = {u: n for n, u in enumerate(self.user_ids)}
        if not self.item_index:
            self.item_index = {i: n for n, i in enumerate(self.item_ids)}

    @classmethod
    def from_interactions(cls, inter: Interactions) -> InteractionMatrix:
        shape = (len(inter.user_ids), len(inter.item_ids))
        values = sp.csr_matrix((inter.value, (inter.user, inter.item)), shape=shape, dtype=np.float32)
        return cls(list(inter.user_ids), list(inter.item_ids), values, inter.now)

    @classmethod
    def from_signals(
        cls,
        signals: Iterable[Mapping[str, Any] | Signal],
        *,
        signal_weights: Mapping[str, float],
        half_life_days: float | None = 14.0,
        items: Iterable[str] = (),
        now: float | None = None,
    ) -> InteractionMatrix:
        inter = aggregate_signals(
            signals, signal_weights=signal_weights, half_life_days=half_life_days, items=items, now=now
        )
        return cls.from_interactions(inter)

    @classmethod
    def from_dense(cls, dense: Sequence[Sequence[float]] | np.ndarray, *, now: float = 0.0) -> InteractionMatrix:
        """Tiny matrices for tests: users "u0".., items "i0".."""
        arr = np.asarray(dense, dtype=np.float32)
        return cls([f"u{n}" for n in range(arr.shape[0])], [f"i{n}" for n in range(arr.shape[1])], sp.csr_matrix(arr), now)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.user_ids), len(self.item_ids))

    @property
    def nnz(self) -> int:
        return int(self.values.nnz)

    def positive(self) -> sp.csr_matrix:
        """Only the pairs with net positive strength."""
        out = self.values.copy()
        out.data = np.maximum(out.data, 0.0)
        out.eliminate_zeros()
        return out

    def user_row(self, user_id: str) -> dict[str, float]:
        """One user's non-zero entries by item id (empty for unknown users)."""
        u = self.user_index.get(user_id)
        if u is None:
            return {}
        start, end = self.values.indptr[u], self.values.indptr[u + 1]
        return {self.item_ids[i]: float(v) for i, v in zip(self.values.indices[start:end], self.values.data[start:end])}


def log_confidence(values: sp.csr_matrix, *, negatives: bool = False) -> sp.csr_matrix:
    """log1p of positive strengths (diminishing returns on piles of signals); negatives dropped
    unless `negatives`, in which case they keep their sign as -log1p(|v|)."""
    out = sp.csr_matrix(values, dtype=np.float32, copy=True)
    if negatives:
        out.data = np.sign(out.data) * np.log1p(np.abs(out.data))
    else:
        out.data = np.log1p(np.maximum(out.data, 0.0))
        out.eliminate_zeros()
    return out


def normalize_rows(m: sp.csr_matrix, *, norm: str = "l2") -> sp.csr_matrix:
    """Each row scaled to unit L2 norm or unit L1 sum (all-zero rows stay zero), as float32.
    (scikit-learn's `normalize`, without importing scikit-learn on the serving path.)"""
    m = sp.csr_matrix(m, dtype=np.float32, copy=True)
    if m.shape[1] == 0 or m.nnz == 0:
        return m
    if norm == "l2":
        sums = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    elif norm == "l1":
        sums = np.asarray(abs(m).sum(axis=1)).ravel()
    else:
        raise ValueError("norm must be 'l1' or 'l2'")
    scale = np.where(sums > 0, 1.0 / np.where(sums > 0, sums, 1.0), 0.0).astype(np.float32)
    m.data *= np.repeat(scale, np.diff(m.indptr))
    return m
