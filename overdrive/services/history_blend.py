"""The learned blend fitted from history, so that a deployment with imported signals serves a
tuned blend from its first request.

The signal history is cut in time, the last `holdout` share of it after the cut. What a ranking
reads is rebuilt from the signals before the cut (live features, the served collaborative
ensemble fitted again on them, content profiles: a `Replica`), and a sample of users who acted after it get the
candidates their feed would have ranked at the cut, every component scoring them. The items they
then took to (a positive signal on an item not touched before) are the clicks, and the blend is
fitted on pairs within each user's candidates (`pairwise_blend`). Components that said nothing
for anyone keep their configured share (no evidence is not evidence against); those that spoke
but did not help get ~0. A check guards the fit: the blend fitted on half the users must rank the
other half's held-out items (NDCG@10) no worse than the configured weights, beyond noise (two
standard errors of the per-user difference), else the configured weights stay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from overdrive.domain.types import COMPONENTS, Item, Signal
from overdrive.domain.weighting import SignalWeighting
from overdrive.models.collaborative_filtering import AdvancedCollaborativeFiltering
from overdrive.models.metrics import ndcg_at_k
from overdrive.services import pairwise_blend, weights_file


class Replica(Protocol):
    """Ranking over the state rebuilt from history (`EnhancedOverdriveRankingService.components`)."""

    async def components(self, user_id: str, *, now: float) -> tuple[list[Item], dict[str, np.ndarray]]: ...


# (the signals before the cut, the catalog, the cut, the ensemble just fitted on all of them) -> a
# ranker over the state those signals build
ReplicaBuilder = Callable[[Sequence[Signal], Mapping[str, Item], float, AdvancedCollaborativeFiltering], Replica]

log = logging.getLogger(__name__)

_K = 10


class HistoryBlend:
    def __init__(
        self,
        *,
        path: Path,
        replica: ReplicaBuilder,
        weighting: SignalWeighting,
        prior: Mapping[str, float],
        holdout: float = 0.1,
        users: int = 1000,
        min_clicks: int = 20,
        growth: float = 0.25,
        seed: int = 0,
    ) -> None:
        """`users`: at most this many users are replayed (sampled with `seed`); `growth`: the
        history is fitted on again once it holds this share more (or fewer) signals."""
        self._path = path
        self._replica = replica
        self._weighting = weighting
        total = sum(prior.values())
        self._prior = np.array([prior.get(c, 0.0) / total for c in COMPONENTS])
        self._holdout = holdout
        self._users = users
        self._min_clicks = min_clicks
        self._growth = growth
        self._seed = seed
        self._fitted = weights_file.load(path)
        self._tried_at: int | None = self._fitted["signals"] if self._fitted else None
        self._held_out: tuple | None = None  # (rows, ids, truth, fitted weights) of the last fit's check fold

    @property
    def fitted(self) -> dict[str, Any] | None:
        return self._fitted

    def reload(self) -> bool:
        """Read the saved fit again, for a process that does not fit (the trainer does, into the
        shared folder): True when it is another fit than the one held."""
        fitted = weights_file.load(self._path)
        if fitted is None or self._fitted is not None and fitted.get("fitted_at") == self._fitted.get("fitted_at"):
            return False
        self._fitted, self._tried_at, self._held_out = fitted, fitted.get("signals"), None
        return True

    def due(self, signals: int) -> bool:
        """Whether a history of `signals` signals is worth fitting on: never tried, or grown (or
        shrunk) by `growth` since the last try."""
        last = self._tried_at
        return last is None or not (1 - self._growth) * last < signals < (1 + self._growth) * last

    def try_fit(self, signals: Sequence[Signal], items: Mapping[str, Item],
                model: AdvancedCollaborativeFiltering) -> dict[str, Any]:
        """`fit`, with a failure reported as its outcome (and logged): the blend serves as before."""
        try:
            return self.fit(signals, items, model)
        except Exception as exc:
            log.exception("fitting the blend on history failed")
            return {"state": "failed", "error": str(exc)}

    def fit(self, signals: Sequence[Signal], items: Mapping[str, Item],
            model: AdvancedCollaborativeFiltering) -> dict[str, Any]:
        """Replay, fit and check (see the module docstring); publish and save when the check
        passes. Synchronous: it runs on the trainer's thread."""
        started = time.perf_counter()
        self._tried_at = len(signals)
        ordered = sorted(signals, key=attrgetter("timestamp"))
        if len(ordered) < 2:
            return {"state": "skipped", "reason": "too little history"}
        cut = ordered[min(len(ordered) - 1, int(len(ordered) * (1.0 - self._holdout)))].timestamp
        before = [s for s in ordered if s.timestamp < cut]
        relevant = self._relevant(before, ordered[len(before):])
        if len(relevant) < 2:
            return {"state": "skipped", "reason": f"{len(relevant)} users with history took to a new item after "
                                                  "the cut; need at least 2"}
        users = sorted(relevant)
        if len(users) > self._users:
            users = sorted(np.random.default_rng(self._seed).choice(np.array(users, dtype=object), size=self._users,
                                                                    replace=False).tolist())
        replica = self._replica(before, items, cut, model)
        rankings = asyncio.run(_replay(replica, users, cut))
        said = [c for c in COMPONENTS if any(c in raw for _, raw in rankings)]
        rows = [(_matrix(raw, len(ranked)), np.array([i.id in relevant[u] for i in ranked], dtype=bool))
                for u, (ranked, raw) in zip(users, rankings)]
        x, clicks = pairwise_blend.pairs(rows, np.random.default_rng(self._seed))
        outcome: dict[str, Any] = {"cut_at": cut, "signals": len(signals), "signals_before_cut": len(before),
                                   "users": len(users), "clicked": clicks, "pairs": len(x), "components_said": said}
        if clicks < self._min_clicks:
            return {"state": "skipped", **outcome, "seconds": round(time.perf_counter() - started, 3),
                    "reason": f"need at least {self._min_clicks} held-out items among the candidates"}
        ids = [[i.id for i in ranked] for ranked, _ in rankings]
        truth = [relevant[u] for u in users]
        first, second = slice(0, None, 2), slice(1, None, 2)
        half = self._weights(pairwise_blend.pairs(rows[first], np.random.default_rng(self._seed))[0], said)
        held_out = (rows[second], ids[second], truth[second])
        check = _compare(held_out, self._prior, half[0] if half else self._prior)
        outcome.update(check={"users": check["users"], "ndcg_at_10_configured": check["ndcg_at_10_before"],
                              "ndcg_at_10_fitted": check["ndcg_at_10_after"],
                              "two_standard_errors": check["two_standard_errors"]},
                       seconds=round(time.perf_counter() - started, 3))
        fitted = self._weights(x, said)
        if fitted is None or half is None or check["worse"]:
            return {"state": "kept configured", **outcome,
                    "reason": "no component that spoke predicted the held-out items" if fitted is None or half is None
                    else "the blend fitted on half the users ranked the other half worse than the configured weights"}
        weights, raw = fitted
        self._held_out = (*held_out, weights)
        self._fitted = {**outcome, "fitted_at": time.time(),
                        "weights": {c: round(float(w), 6) for c, w in zip(COMPONENTS, weights, strict=True)},
                        "coefficients": {c: round(float(v), 6) for c, v in zip(COMPONENTS, raw, strict=True)}}
        weights_file.save(self._path, self._fitted)
        return {"state": "fitted", **self._fitted}

    def vet(self, weights: Mapping[str, float]) -> dict[str, Any] | None:
        """How other weights (the blend fitted on impressions) rank the held-out users of this
        process's last history fit, against the blend fitted from history: `worse` when they rank
        them worse beyond two standard errors. None before such a fit (after a restart: the replay
        is not kept on disk). The history blend was fitted on these users too, so it has a slight
        edge here."""
        held_out = self._held_out
        if held_out is None:
            return None
        rows, ids, truth, fitted = held_out
        return _compare((rows, ids, truth), fitted, np.array([weights.get(c, 0.0) for c in COMPONENTS]))

    def _relevant(self, before: Sequence[Signal], after: Sequence[Signal]) -> dict[str, set[str]]:
        """Each user with history before the cut -> the items they took to after it, new to them."""
        touched: dict[str, set[str]] = {}
        for s in before:
            touched.setdefault(s.user_id, set()).add(s.content_id)
        taken: dict[str, dict[str, float]] = {}
        for s in after:
            if s.user_id in touched and s.content_id not in touched[s.user_id]:
                per_item = taken.setdefault(s.user_id, {})
                per_item[s.content_id] = per_item.get(s.content_id, 0.0) + self._weighting.strength(s)
        relevant = {u: {i for i, w in per_item.items() if w > 0.0} for u, per_item in taken.items()}
        return {u: items for u, items in relevant.items() if items}

    def _weights(self, x: np.ndarray, said: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """(weights, raw coefficients) from pair differences; the components that said nothing
        keep their prior share. None when no component that spoke predicts the clicks."""
        if not len(x):
            return None
        raw = pairwise_blend.coefficients(x)
        spoke = np.array([c in said for c in COMPONENTS])
        coef = np.where(spoke, np.clip(raw, 0.0, None), 0.0)
        if coef.sum() <= 0:
            return None
        silent_share = float(self._prior[~spoke].sum())
        weights = np.where(spoke, (1.0 - silent_share) * coef / coef.sum(), self._prior)
        return weights, raw


async def _replay(replica: Replica, users: Sequence[str], cut: float) -> list[tuple[list[Item], dict[str, np.ndarray]]]:
    return [await replica.components(user, now=cut) for user in users]


def _matrix(raw: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """One row per candidate, one column per component (0 where it said nothing)."""
    return np.column_stack([raw.get(c, np.zeros(n)) for c in COMPONENTS]) if n else np.zeros((0, len(COMPONENTS)))


def _compare(held_out: tuple, before: np.ndarray, after: np.ndarray) -> dict[str, Any]:
    """NDCG@10 of two weight vectors on the same users, and whether `after` is worse than `before`
    beyond two standard errors of the per-user difference."""
    rows, ids, truth = held_out
    a, b = _ndcg(rows, ids, truth, before), _ndcg(rows, ids, truth, after)
    gain = b - a
    margin = 2.0 * float(gain.std(ddof=1)) / np.sqrt(len(gain)) if len(gain) > 1 else 0.0
    return {"users": len(gain), "ndcg_at_10_before": round(float(a.mean()), 5),
            "ndcg_at_10_after": round(float(b.mean()), 5), "two_standard_errors": round(margin, 5),
            "worse": bool(gain.mean() < -margin)}


def _ndcg(rows: Sequence[tuple[np.ndarray, np.ndarray]], ids: Sequence[list[str]], truth: Sequence[set[str]],
          weights: np.ndarray) -> np.ndarray:
    """Each user's NDCG@10 when their candidates are blended with `weights`, against all their
    held-out items."""
    return np.array([ndcg_at_k([[candidates[i] for i in np.argsort(-(scores @ weights), kind="stable")[:_K]]],
                               [relevant], k=_K)
                     for (scores, _), candidates, relevant in zip(rows, ids, truth)])
