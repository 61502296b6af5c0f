"""Sliding-window counts over 1m, 5m, 15m, 1h and 24h, kept in time buckets of bounded number.

Short windows (1m, 5m, 15m) sum 10-second buckets; long ones (1h, 24h) sum 1-minute buckets.
A window's figure counts the events in [now - window - bucket, now]: it can include at most one
bucket width of older events (≤ 10 s for the short windows, ≤ 60 s for the long ones) and never
misses an event inside the window. Memory per entity is at most 90 + 1440 buckets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WINDOWS_S: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "24h": 86400}
FINE_BUCKET_S = 10
COARSE_BUCKET_S = 60
FINE_SPAN_S = WINDOWS_S["15m"]
COARSE_SPAN_S = WINDOWS_S["24h"]


def bucket_width(window: str) -> int:
    return FINE_BUCKET_S if WINDOWS_S[window] <= FINE_SPAN_S else COARSE_BUCKET_S


@dataclass(slots=True)
class WindowCounts:
    """Bucketed counts and summed signal weights of one entity (an item, author or user)."""

    fine: dict[int, list[float]] = field(default_factory=dict)  # bucket start -> [count, weight]
    coarse: dict[int, list[float]] = field(default_factory=dict)

    def add(self, ts: float, weight: float, now: float) -> None:
        self.add_to(buckets_of(ts, now), weight)

    def add_to(self, buckets: tuple[int | None, int | None], weight: float) -> None:
        """Count an event in its (fine, coarse) buckets (`buckets_of`, worked out once for the
        several entities one signal counts for)."""
        fine, coarse = buckets
        if fine is not None:
            _bump(self.fine, fine, weight)
        if coarse is not None:
            _bump(self.coarse, coarse, weight)

    def prune(self, now: float) -> None:
        for buckets, width, span in ((self.fine, FINE_BUCKET_S, FINE_SPAN_S), (self.coarse, COARSE_BUCKET_S, COARSE_SPAN_S)):
            oldest = now - span - width
            for start in [s for s in buckets if s + width <= oldest]:
                del buckets[start]

    def window(self, name: str, now: float) -> tuple[int, float]:
        """(count, summed weight) of events in window `name` as of `now`."""
        width = bucket_width(name)
        buckets = self.fine if width == FINE_BUCKET_S else self.coarse
        since = now - WINDOWS_S[name]
        count, weight = 0, 0.0
        for start, (c, w) in buckets.items():
            if start + width > since and start <= now:
                count += int(c)
                weight += w
        return count, weight

    def all_windows(self, now: float) -> dict[str, dict[str, float]]:
        out = {}
        for name in WINDOWS_S:
            c, w = self.window(name, now)
            out[name] = {"count": c, "weight": round(w, 6)}
        return out

    def empty(self) -> bool:
        return not self.coarse


def _bump(buckets: dict[int, list[float]], start: int, weight: float) -> None:
    cell = buckets.get(start)
    if cell is None:
        buckets[start] = [1.0, weight]
    else:
        cell[0] += 1.0
        cell[1] += weight


def buckets_of(ts: float, now: float) -> tuple[int | None, int | None]:
    """The start of the fine and the coarse bucket an event at `ts` counts in as of `now` (None:
    older than every window of that width)."""
    if ts < now - COARSE_SPAN_S - COARSE_BUCKET_S:
        return None, None
    coarse = int(ts // COARSE_BUCKET_S) * COARSE_BUCKET_S
    if ts >= now - FINE_SPAN_S - FINE_BUCKET_S:
        return int(ts // FINE_BUCKET_S) * FINE_BUCKET_S, coarse
    return None, coarse


def velocity(count_1h: float, count_24h: float, *, prior_per_hour: float = 1.0) -> float:
    """How much faster an entity is moving now than its own daily baseline (1 = as usual)."""
    baseline = max(count_24h - count_1h, 0.0) / 23.0
    return (count_1h + prior_per_hour) / (baseline + prior_per_hour)
