"""The `learned` strategy: blend weights fitted on logged rankings and the signals that followed.

Every ranking of a blended strategy logs what it showed — user, item and each component's own
score — as impressions. A positive signal (weight > 0) from that user on that item arriving
within `horizon_s` of the ranking marks the impression clicked. The fit is pairwise
(`pairwise_blend`): within each logged ranking every clicked item is paired with unclicked ones.
Its coefficients, clipped at zero and normalised to sum to one, are mixed with the prior in
proportion clicks : `prior_clicks`, so that little feedback only nudges it. The prior is the blend
fitted from the signal history after a retrain (`history_blend`), or, on a store without enough
history, the configured weights. Position is left out: shown lists are short and position bias
mostly reorders clicks within them. Weights are saved to `MODEL_CACHE_DIR/blend/weights.json`
(atomically) and loaded at start-up; the impression log lives in memory, bounded to `capacity`
impressions, kept as arrays per ranking rather than an object per impression (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from overdrive.domain.types import COMPONENTS, Item, RankResult, Signal
from overdrive.domain.weighting import SignalWeighting
from overdrive.models.collaborative_filtering import AdvancedCollaborativeFiltering
from overdrive.services import pairwise_blend, weights_file
from overdrive.services.history_blend import HistoryBlend
from overdrive.services.ranking import LEARNED

log = logging.getLogger(__name__)

_LOGGED_STRATEGIES = ("enhanced", LEARNED)  # blends that score every component


@dataclass(slots=True)
class _Shown:
    """One logged ranking: the items it showed, each one's component scores and click label."""

    ranking: int  # in the order rankings were logged
    user_id: str
    item_ids: tuple[str, ...]
    shown_at: float
    components: np.ndarray  # items × COMPONENTS
    clicked: np.ndarray  # per item


class BlendLearner:
    def __init__(
        self,
        *,
        model_dir: Path,
        weighting: SignalWeighting,
        capacity: int = 200_000,
        horizon_s: float = 86_400.0,
        min_positives: int = 20,
        prior: Mapping[str, float] | None = None,
        prior_clicks: float = 0.0,
        history: HistoryBlend | None = None,
    ) -> None:
        """`history`: the blend fitted from the signal history, which then is the prior (None:
        the configured weights are, `prior`)."""
        self._path = model_dir / "weights.json"
        self._weighting = weighting
        self._capacity = capacity
        self._horizon_s = horizon_s
        self._min_positives = min_positives
        total = sum((prior or {}).values())
        self._prior = np.array([(prior or {}).get(c, 0.0) / total if total else 0.0 for c in COMPONENTS])
        self._prior_clicks = prior_clicks if total else 0.0
        self._log: deque[_Shown] = deque()
        self._logged = 0  # impressions in the log
        self._latest: dict[tuple[str, str], _Shown] = {}  # (user, item) -> the last ranking that showed it
        self._lock = threading.Lock()  # the log is read by fits in a worker thread
        self._rankings = 0
        self._fitted: dict[str, Any] | None = weights_file.load(self._path)
        self._last_job: dict[str, Any] = {"state": "never run"}
        self._history = history
        self._history_job: dict[str, Any] = {"state": "never run" if history is not None else "off"}
        self._task: asyncio.Task | None = None
        self._schedule: asyncio.Task | None = None
        self._following: asyncio.Task | None = None

    @property
    def weights(self) -> Mapping[str, float] | None:
        """Fitted on live impressions, else fitted from history, else None (not fitted yet)."""
        if self._fitted is not None:
            return self._fitted["weights"]
        fitted = self._history.fitted if self._history is not None else None
        return None if fitted is None else fitted["weights"]

    # ------------------------------------------------------------------------- logging

    def observe(self, result: RankResult) -> None:
        """RankingObserver: log what a blended ranking showed."""
        if result.strategy not in _LOGGED_STRATEGIES or not result.items:
            return
        components = np.array([[item.components.get(c, 0.0) for c in COMPONENTS] for item in result.items])
        item_ids = tuple(item.id for item in result.items)
        with self._lock:
            self._rankings += 1
            shown = _Shown(self._rankings, result.user_id, item_ids, time.time(), components,
                           np.zeros(len(item_ids), dtype=bool))
            self._log.append(shown)
            self._logged += len(item_ids)
            for item_id in item_ids:
                self._latest[(shown.user_id, item_id)] = shown
            while self._logged > self._capacity:
                old = self._log.popleft()
                self._logged -= len(old.item_ids)
                for item_id in old.item_ids:
                    if self._latest.get((old.user_id, item_id)) is old:
                        del self._latest[(old.user_id, item_id)]

    def on_applied(self, signals: Sequence[Signal]) -> None:
        """Applied-signal hook: a positive signal soon after an impression labels it."""
        now = time.time()
        latest, horizon = self._latest, self._horizon_s
        with self._lock:
            for s in signals:
                shown = latest.get((s.user_id, s.content_id))
                if shown is not None and now - shown.shown_at <= horizon and self._weighting.strength(s) > 0:
                    shown.clicked[shown.item_ids.index(s.content_id)] = True

    def forget_user(self, user_id: str) -> int:
        """GDPR erasure: the user's impressions and their click labels leave the log (the fitted
        weights are an aggregate and stay). Returns how many impressions went."""
        with self._lock:
            kept = deque(shown for shown in self._log if shown.user_id != user_id)
            dropped = sum(len(shown.item_ids) for shown in self._log if shown.user_id == user_id)
            self._log, self._logged = kept, self._logged - dropped
            for key in [k for k in self._latest if k[0] == user_id]:
                del self._latest[key]
        return dropped

    # ------------------------------------------------------------------------- fitting

    def fit(self) -> dict[str, Any]:
        """Fit on the current log; publish and save the weights if there is enough feedback."""
        with self._lock:  # labels change as signals arrive: the fit takes a copy
            rankings = [(shown.user_id, shown.ranking, shown.components, shown.clicked.copy()) for shown in self._log]
            impressions = self._logged
        # The pairs come from one random stream, so the rankings go to it in a fixed order (by user,
        # then in the order that user's rankings were logged), not in the order concurrent
        # requests happened to finish in, which would change the fit from run to run.
        rankings.sort(key=lambda shown: shown[:2])
        x, clicks = pairwise_blend.pairs(((components, clicked) for _, _, components, clicked in rankings),
                                         np.random.default_rng(0))
        if clicks < self._min_positives:
            return {"state": "skipped", "impressions": impressions, "clicked": clicks,
                    "reason": f"need at least {self._min_positives} clicked impressions in rankings that "
                              "also showed unclicked items"}
        raw = pairwise_blend.coefficients(x)
        coef = np.clip(raw, 0.0, None)
        if coef.sum() <= 0:
            return {"state": "skipped", "pairs": len(x), "clicked": clicks, "reason": "no component predicts clicks"}
        # Shrunk toward the prior (the blend fitted from history, else the configured weights) as
        # if it had been fitted on `prior_clicks` clicks: a little feedback nudges it, plenty decides.
        prior, prior_clicks = self._prior_now()
        share = clicks / (clicks + prior_clicks)
        weights = share * coef / coef.sum() + (1.0 - share) * prior
        # Vetted on the interactions held out by the last fit from history, where there was one:
        # impressions can teach a blend that the history says ranks worse (a component whose scale
        # drifts between the rankings logged and the ones served, such as freshness).
        vetted = self._history.vet(dict(zip(COMPONENTS, weights))) if self._history is not None else None
        if vetted is not None and vetted["worse"]:
            return {"state": "kept the blend fitted from history", "clicked": clicks, "pairs": len(x), "check": vetted,
                    "weights_rejected": {c: round(float(w), 6) for c, w in zip(COMPONENTS, weights, strict=True)},
                    "reason": "the blend fitted on impressions ranked the interactions the history fit held out "
                              "worse than the blend fitted from history"}
        fitted = {
            "weights": {c: round(float(w), 6) for c, w in zip(COMPONENTS, weights, strict=True)},
            "coefficients": {c: round(float(v), 6) for c, v in zip(COMPONENTS, raw, strict=True)},
            "rankings": len(rankings),
            "clicked": clicks,
            "fitted_share": round(share, 4),
            "pairs": len(x),
            "check": vetted,
            "fitted_at": time.time(),
        }
        weights_file.save(self._path, fitted)
        self._fitted = fitted
        return {"state": "fitted", **fitted}

    def _prior_now(self) -> tuple[np.ndarray, float]:
        """What live feedback is shrunk toward, and how many clicks it counts as."""
        fitted = self._history.fitted if self._history is not None else None
        if fitted is None:
            return self._prior, self._prior_clicks
        return np.array([fitted["weights"][c] for c in COMPONENTS]), max(self._prior_clicks, float(fitted["clicked"]))

    def learn_from_history(self, signals: Sequence[Signal], items: Mapping[str, Item],
                           model: AdvancedCollaborativeFiltering) -> None:
        """After a collaborative retrain (its thread, its snapshot and model): fit the blend on the
        history when it has grown enough since the last such fit (`HistoryBlend.due`)."""
        if self._history is None or not self._history.due(len(signals)):
            return
        self._history_job = {"state": "running", "started_at": time.time()}
        self._take_history(self._history.try_fit(signals, items, model))

    def history_fitted_apart(self, outcome: dict[str, Any] | None) -> None:
        """After a retrain in a child process, which fitted the blend on history itself when due
        (`outcome`; None when not due): serve that fit and report it as if fitted here."""
        if self._history is None or outcome is None:
            return
        self._history.reload()
        self._take_history(outcome)

    def _take_history(self, outcome: dict[str, Any]) -> None:
        # The weights themselves are in `from_history` of the status.
        self._history_job = {**{k: v for k, v in outcome.items() if k not in ("weights", "coefficients")},
                             "finished_at": time.time()}
        if outcome["state"] == "fitted" and self._fitted is not None:
            self.fit()  # the blend fitted on impressions, shrunk toward its new prior

    async def train(self, *, reason: str) -> dict[str, Any]:
        """Start a fit in a worker thread unless one runs; returns the job state."""
        if self._task is None or self._task.done():
            self._last_job = {"state": "running", "reason": reason, "started_at": time.time()}
            self._task = asyncio.create_task(self._run(reason))
        return dict(self._last_job)

    async def _run(self, reason: str) -> None:
        try:
            outcome = await asyncio.to_thread(self.fit)
            self._last_job = {"reason": reason, "finished_at": time.time(), **outcome}
        except Exception as exc:  # a failed fit keeps the previous weights serving
            log.exception("blend fit failed")
            self._last_job = {"state": "failed", "reason": reason, "error": str(exc)}

    def start(self, *, interval_s: float | None, follow_history_s: float | None = None) -> None:
        """`interval_s`: refit on impressions this often; `follow_history_s`: where the trainer
        fits the blend on history (`python -m overdrive.trainer`), look for a new fit this often."""
        pairwise_blend.load_fitter()
        if interval_s:
            self._schedule = asyncio.create_task(self._every(interval_s))
        if follow_history_s and self._history is not None:
            self._following = asyncio.create_task(self._follow_history(follow_history_s))

    async def _follow_history(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                changed = await asyncio.to_thread(self._history.reload)  # type: ignore[union-attr]
            except Exception:  # a shared volume's hiccup: the next look tries again
                log.exception("reading the blend the trainer fitted on history failed")
                continue
            if changed:
                fitted = self._history.fitted  # type: ignore[union-attr]
                self._history_job = {"state": "loaded", "fitted_by": "trainer", "loaded_at": time.time(),
                                     "fitted_at": (fitted or {}).get("fitted_at")}
                log.info("serving the blend the trainer fitted on history")
                if self._fitted is not None:  # the impressions fit, shrunk toward its new prior
                    await self.train(reason="the trainer fitted the blend on history")

    async def _every(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.train(reason="schedule")

    async def close(self) -> None:
        for task in (self._schedule, self._following, self._task):
            if task is not None:
                task.cancel()

    def status(self) -> dict[str, Any]:
        with self._lock:
            logged, clicked = self._logged, sum(int(shown.clicked.sum()) for shown in self._log)
        history = self._history.fitted if self._history is not None else None
        return {
            "strategy": LEARNED,
            "serving": ("weights fitted on impressions" if self._fitted else "weights fitted from history"
                        if history else "configured weights (not fitted yet)"),
            "fitted": self._fitted,
            "from_history": history,
            "history_job": dict(self._history_job),
            "impressions_logged": logged,
            "impressions_clicked": clicked,
            "last_job": dict(self._last_job),
        }
