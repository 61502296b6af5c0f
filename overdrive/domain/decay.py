"""Exponentially decayed sums that accept out-of-order (backfilled) events exactly."""

from __future__ import annotations

import math

import numpy as np


class DecayedSum:
    """sum_i w_i * 2^(-(t - t_i) / half_life), kept as (value at t_ref, t_ref) with t_ref = max t_i."""

    __slots__ = ("value", "t_ref")

    def __init__(self) -> None:
        self.value = 0.0
        self.t_ref = -math.inf

    def add(self, weight: float, at: float, rate: float) -> None:
        """Add `weight` observed at time `at`; `rate` is ln(2) / half_life."""
        if at >= self.t_ref:
            if self.t_ref != -math.inf:
                self.value *= math.exp(-rate * (at - self.t_ref))
            self.t_ref = at
            self.value += weight
        else:
            self.value += weight * math.exp(-rate * (self.t_ref - at))

    def at(self, now: float, rate: float) -> float:
        """The decayed sum as seen at `now` (events after `now` count undecayed)."""
        return 0.0 if self.t_ref == -math.inf else decayed(self.value, self.t_ref, now, rate)


def decayed(value: float, t_ref: float, now: float, rate: float) -> float:
    """A sum worth `value` at `t_ref`, as seen at `now`: `DecayedSum.at` for a stored pair."""
    return value * math.exp(-rate * (now - t_ref)) if now >= t_ref else value


def decayed_many(values: np.ndarray, t_refs: np.ndarray, now: float, rate: float) -> np.ndarray:
    """`decayed` over arrays of stored pairs (equal to it up to rounding: numpy's exp is not
    bit-identical to `math.exp`)."""
    return values * np.exp(-rate * np.maximum(now - t_refs, 0.0))


def decay_rate(half_life_seconds: float) -> float:
    return math.log(2.0) / half_life_seconds
