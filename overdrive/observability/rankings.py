"""What the served rankings say about the models and the catalog: told of every ranking.

`RankingMonitor` is a ranking observer (the ranker tells it each `RankResult`, as it tells the
insights journal). Per ranking it writes the spec's log line ("Processing recommendation" with the
user, request id, strategy, experiment arm and processing time; the record is made by the log
writer's thread, `DeferredLogger`) and keeps, cheaply, what the dashboard and `/metrics` report:

- each component's own score over the served items (a histogram per component, from every
  `SCORE_SAMPLE_EVERY`-th ranking: binning every item's scores cost more than the rest together);
- which component *decided* each ranking: the one contributing most to the top item's score;
- exposures per item in one-minute buckets over the last hour: coverage (distinct items served),
  their concentration (Gini over the catalog); and the share of cold items served — a served item
  is cold when it has no engagement at ranking time (its `real_time` score is 0; only items whose
  ranking scored `real_time` count);
- the last few rankings of the most recently ranked users, each item with its per-component scores
  (the user debugger; forgotten on erasure).

The request path does a few dict and list operations per ranking; the histograms are binned when
read (`/metrics`, the dashboard), from a bounded buffer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any

import numpy as np

from overdrive.domain.types import RankResult
from overdrive.observability.logs import DeferredLogger

log = logging.getLogger("overdrive.ranking")

# Component scores lie in [-1, 1]; bucket upper bounds for the histograms.
SCORE_BUCKETS: tuple[float, ...] = (-0.5, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_BUCKETS = np.array(SCORE_BUCKETS)
_HOUR_MINUTES = 60
_MAX_BUFFERED = 50_000  # component values waiting to be binned (about 500 sampled rankings of 20 items × 5)
SCORE_SAMPLE_EVERY = 4  # the score histograms take one ranking in this many (a systematic sample)
_COLD_COMPONENT = "real_time"
_ids = attrgetter("id")


def decided_by(result: RankResult) -> str | None:
    """The component that contributed most to the top item's score (None: nothing ranked)."""
    if not result.items or not result.items[0].scores:
        return None
    scores = result.items[0].scores
    return max(scores, key=scores.__getitem__)


def gini(counts: Sequence[float] | np.ndarray, zeros: int = 0) -> float:
    """Gini coefficient of `counts` plus `zeros` more zero counts (0: even, → 1: all on one)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(x) + zeros
    total = x.sum()
    if n == 0 or total <= 0:
        return 0.0
    x = np.concatenate([np.zeros(zeros), x]) if zeros else x
    ranks = np.arange(1, n + 1)
    return float((2.0 * (ranks * x).sum()) / (n * total) - (n + 1) / n)


class RankingMonitor:
    def __init__(self, *, per_user: int = 5, max_users: int = 10_000, logger: logging.Logger | None = None,
                 score_sample_every: int = SCORE_SAMPLE_EVERY) -> None:
        self._log = DeferredLogger(logger or log)  # made into a record off the request's path
        self._sample_every = score_sample_every
        self._per_user = per_user
        self._max_users = max_users
        self._lock = threading.Lock()  # readers (a scrape in a thread) against the event loop's writes
        self.rankings: Counter[str] = Counter()  # per strategy
        self.decided: Counter[str] = Counter()  # per component
        self.served = 0  # items served in rankings
        self.cold_checked = 0  # items served in rankings whose blend scored `real_time`
        self.cold = 0  # of those, items with no engagement
        self._values: list[tuple[str, float]] = []  # (component, own score), not yet binned
        self._sampled = score_sample_every - 1  # the first ranking is sampled
        self._bins: dict[str, np.ndarray] = {}  # component -> counts per bucket (last: +Inf)
        self._sums: dict[str, float] = {}
        self._minutes: deque[tuple[int, Counter[str]]] = deque()  # (minute, exposures per item)
        self._hour: Counter[str] = Counter()  # the sum of `_minutes`: exposures per item in the last hour
        self._by_user: OrderedDict[str, deque[RankResult]] = OrderedDict()

    # ------------------------------------------------------------------------- observer

    def observe(self, result: RankResult) -> None:
        if self._log.isEnabledFor(logging.INFO):
            experiment = result.experiment or {}
            self._log.log(logging.INFO, "Processing recommendation", {
                "user_id": result.user_id, "request_id": result.request_id, "ranking_method": result.strategy,
                "experiment": experiment.get("id"), "experiment_arm": experiment.get("arm"),
                "processing_time_ms": round(result.processing_time_ms, 3),
                "candidates": result.candidates_considered, "items": len(result.items),
            })
        items = result.items
        minute = int(time.time() // 60)
        with self._lock:
            self.rankings[result.strategy] += 1
            history = self._by_user.pop(result.user_id, None) or deque(maxlen=self._per_user)
            history.append(result)
            self._by_user[result.user_id] = history
            if len(self._by_user) > self._max_users:
                self._by_user.popitem(last=False)
            if not items:
                return
            top = items[0].scores
            if top:
                self.decided[max(top, key=top.__getitem__)] += 1
            self.served += len(items)
            engagement = [i.components.get(_COLD_COMPONENT) for i in items]  # None: not scored for that item
            self.cold_checked += len(engagement) - engagement.count(None)
            self.cold += engagement.count(0.0)
            if not self._minutes or self._minutes[-1][0] != minute:
                self._expire(minute)
                self._minutes.append((minute, Counter()))
            ids = list(map(_ids, items))
            self._minutes[-1][1].update(ids)
            self._hour.update(ids)
            self._sampled += 1
            if self._sampled >= self._sample_every:  # the score histograms take every n-th ranking
                self._sampled = 0
                values = self._values
                for item in items:
                    values.extend(item.components.items())
                if len(values) > _MAX_BUFFERED:
                    self._bin()

    def _expire(self, minute: int) -> None:
        """Drop the minute buckets an hour old by `minute` (caller holds the lock)."""
        minutes, hour = self._minutes, self._hour
        while minutes and minutes[0][0] <= minute - _HOUR_MINUTES:
            _, counts = minutes.popleft()
            hour.subtract(counts)
            for item_id in counts:
                if hour[item_id] <= 0:
                    del hour[item_id]

    def forget_user(self, user_id: str) -> None:
        """Erasure: the user's kept rankings go (aggregate counts name no one)."""
        with self._lock:
            self._by_user.pop(user_id, None)

    # ---------------------------------------------------------------------------- reads

    def recent_users(self, n: int) -> list[str]:
        """The `n` users ranked most recently, latest first."""
        with self._lock:
            users = list(reversed(self._by_user))
        return users[:n]

    def recent(self, user_id: str) -> list[RankResult]:
        with self._lock:
            return list(self._by_user.get(user_id, ()))

    def _bin(self) -> None:
        """Fold the buffered component scores into the histograms (caller holds the lock)."""
        if not self._values:
            return
        by_component: dict[str, list[float]] = {}
        for name, value in self._values:
            kept = by_component.get(name)
            if kept is None:
                kept = by_component[name] = []
            kept.append(value)
        self._values = []
        for name, values in by_component.items():
            v = np.asarray(values, dtype=np.float64)
            idx = np.searchsorted(_BUCKETS, v, side="left")  # le semantics: v <= bound
            counts = np.bincount(idx, minlength=len(_BUCKETS) + 1)
            if name in self._bins:
                self._bins[name] += counts
            else:
                self._bins[name] = counts
            self._sums[name] = self._sums.get(name, 0.0) + float(v.sum())

    def score_histograms(self) -> dict[str, dict[str, Any]]:
        """component -> {"buckets": upper bounds, "counts": per bucket (last: above 1), "sum", "count"}."""
        with self._lock:
            self._bin()
            return {name: {"buckets": list(SCORE_BUCKETS), "counts": counts.tolist(), "sum": self._sums[name],
                           "count": int(counts.sum())} for name, counts in sorted(self._bins.items())}

    def exposures(self) -> Counter[str]:
        """Times each item was served in the last hour (in whole minutes)."""
        with self._lock:
            self._expire(int(time.time() // 60))
            return Counter(self._hour)

    def catalog_health(self, catalog_items: int | None) -> dict[str, Any]:
        """Coverage, concentration and cold share of the last hour's rankings."""
        exposed = self.exposures()
        distinct = len(exposed)
        unserved = max(0, (catalog_items or 0) - distinct)
        with self._lock:
            cold = self.cold / self.cold_checked if self.cold_checked else None
        return {
            "items_served_last_hour": int(sum(exposed.values())),
            "distinct_items_served_last_hour": distinct,
            "coverage_last_hour": round(distinct / catalog_items, 6) if catalog_items else None,
            "exposure_gini_last_hour": round(gini(list(exposed.values()), zeros=unserved), 6) if exposed else None,
            "cold_share_served": round(cold, 6) if cold is not None else None,
            "most_served_last_hour": [{"id": i, "exposures": n} for i, n in exposed.most_common(10)],
        }

    def decided_share(self) -> dict[str, float]:
        with self._lock:
            total = sum(self.decided.values())
            return {c: round(n / total, 6) for c, n in self.decided.most_common()} if total else {}

    def counters(self) -> dict[str, Any]:
        with self._lock:
            return {"rankings": dict(self.rankings), "decided": dict(self.decided), "served": self.served,
                    "cold_checked": self.cold_checked, "cold": self.cold}


def explain(results: Iterable[RankResult]) -> list[dict[str, Any]]:
    """Rankings as plain data for the user debugger, newest first."""
    out = []
    for r in reversed(list(results)):
        out.append({
            "request_id": r.request_id, "strategy": r.strategy, "experiment": r.experiment,
            "processing_time_ms": round(r.processing_time_ms, 3), "candidates": r.candidates_considered,
            "decided_by": decided_by(r),
            "items": [{"id": i.id, "rank": i.rank, "score": i.score, "scores": i.scores, "components": i.components}
                      for i in r.items],
        })
    return out
