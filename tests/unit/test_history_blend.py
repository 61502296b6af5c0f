"""HistoryBlend on a planted replay: which component predicts what users took to after the cut is
known, so the fitted weights are too."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from overdrive.domain.types import COMPONENTS, DEFAULT_SIGNAL_WEIGHTS, Item, RankedItem, RankResult, Signal
from overdrive.domain.weighting import SignalWeighting
from overdrive.services.blend_learner import BlendLearner
from overdrive.services.history_blend import HistoryBlend

PRIOR = {"collaborative": 1.0, "real_time": 1.0, "freshness": 2.0, "context": 1.0}
T0 = 1_000_000.0


class PlantedReplica:
    """Every user's candidates are the 30 items; `collaborative` scores the items the user takes
    after the cut highest (with noise), `freshness` is noise, `context` says nothing."""

    def __init__(self, taken: Mapping[str, set[str]], items: Sequence[str]) -> None:
        self._taken, self._items = taken, list(items)
        self.cuts: list[float] = []

    async def components(self, user_id: str, *, now: float) -> tuple[list[Item], dict[str, np.ndarray]]:
        self.cuts.append(now)
        rng = np.random.default_rng(int(user_id[1:]))
        taken = np.array([i in self._taken[user_id] for i in self._items], dtype=float)
        return [Item(id=i) for i in self._items], {
            "collaborative": taken + rng.normal(0, 0.3, len(self._items)),
            "real_time": rng.normal(0, 1, len(self._items)),
            "freshness": rng.normal(0, 1, len(self._items)),
        }


def _history(users: int) -> tuple[list[Signal], dict[str, set[str]]]:
    """Each user likes two items before the cut and two new ones after it."""
    signals, taken = [], {}
    for u in range(users):
        user = f"u{u}"
        before = [f"i{(u + k) % 30}" for k in range(2)]
        after = [f"i{(u + k) % 30}" for k in range(10, 12)]
        taken[user] = set(after)
        signals += [Signal(user_id=user, content_id=i, signal_type="like", timestamp=T0 + u + k)
                    for k, i in enumerate(before)]
        signals += [Signal(user_id=user, content_id=i, signal_type="like", timestamp=T0 + 10_000 + u + k)
                    for k, i in enumerate(after)]
    return signals, taken


def _blend(tmp_path: Path, replica: PlantedReplica) -> HistoryBlend:
    return HistoryBlend(path=tmp_path / "history.json", replica=lambda before, items, cut, served: replica,
                        weighting=SignalWeighting(DEFAULT_SIGNAL_WEIGHTS), prior=PRIOR, holdout=0.5)


def test_the_component_that_predicts_takes_the_weight_and_a_silent_one_keeps_its_share(tmp_path: Path) -> None:
    signals, taken = _history(120)
    replica = PlantedReplica(taken, [f"i{n}" for n in range(30)])
    blend = _blend(tmp_path, replica)
    outcome = blend.fit(signals, {}, None)
    assert outcome["state"] == "fitted", outcome
    weights = outcome["weights"]
    assert set(outcome["components_said"]) == {"collaborative", "real_time", "freshness"}
    assert weights["context"] == pytest.approx(1.0 / 5.0, abs=1e-6)  # its configured share, unchanged
    assert weights["collaborative"] > 0.75 and weights["real_time"] < 0.03 and weights["freshness"] < 0.03, weights
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-5) and set(weights) == set(COMPONENTS)
    check = outcome["check"]
    assert check["ndcg_at_10_fitted"] > check["ndcg_at_10_configured"] + 0.2, check
    # Ranked as of the cut, after every user's first two likes and before the rest.
    assert replica.cuts and all(T0 + 120 < cut <= T0 + 10_000 for cut in replica.cuts)
    assert outcome["users"] == 120 and outcome["clicked"] == 240
    assert _blend(tmp_path, replica).fitted["weights"] == weights  # saved, read back at start-up


def test_a_history_is_fitted_again_only_once_it_has_grown_or_shrunk_by_a_quarter(tmp_path: Path) -> None:
    signals, taken = _history(60)
    blend = _blend(tmp_path, PlantedReplica(taken, [f"i{n}" for n in range(30)]))
    assert blend.due(len(signals))
    assert blend.fit(signals, {}, None)["state"] == "fitted"
    n = len(signals)
    assert not blend.due(n) and not blend.due(int(n * 1.2)) and not blend.due(int(n * 0.8))
    assert blend.due(int(n * 1.25)) and blend.due(int(n * 0.75))


def test_too_little_history_is_skipped_and_leaves_nothing_fitted(tmp_path: Path) -> None:
    signals, taken = _history(1)
    blend = _blend(tmp_path, PlantedReplica(taken, [f"i{n}" for n in range(30)]))
    outcome = blend.fit(signals, {}, None)
    assert outcome["state"] == "skipped" and blend.fitted is None and not (tmp_path / "history.json").exists()


def _impressions(learner: BlendLearner, predictor: str) -> None:
    """Logged rankings of 10 items whose clicks follow `predictor` (the other components: noise)."""
    rng = np.random.default_rng(1)
    for u in range(150):
        rows = [{c: float(rng.random()) for c in ("collaborative", "real_time", "freshness")} for _ in range(10)]
        items = [RankedItem(id=f"s{u}-{n}", score=0.0, rank=n + 1, scores={}, components=c) for n, c in enumerate(rows)]
        learner.observe(RankResult(user_id=f"v{u}", items=items, strategy="enhanced", request_id="r",
                                   processing_time_ms=1.0, candidates_considered=10))
        best = max(range(10), key=lambda n: rows[n][predictor])
        learner.on_applied([Signal(user_id=f"v{u}", signal_type="like", content_id=f"s{u}-{best}", timestamp=0.0)])


@pytest.mark.parametrize("predictor, served", [("freshness", False), ("collaborative", True)])
def test_a_blend_fitted_on_impressions_serves_only_if_the_history_does_not_say_it_ranks_worse(
        tmp_path: Path, predictor: str, served: bool) -> None:
    """The history says `collaborative` finds what users take and `freshness` is noise: impressions
    that teach freshness are not served; impressions that teach collaborative are."""
    signals, taken = _history(120)
    history = _blend(tmp_path, PlantedReplica(taken, [f"i{n}" for n in range(30)]))
    learner = BlendLearner(model_dir=tmp_path / "blend", weighting=SignalWeighting(DEFAULT_SIGNAL_WEIGHTS),
                           prior=PRIOR, prior_clicks=50.0, history=history)
    learner.learn_from_history(signals, {}, None)
    from_history = dict(learner.weights)
    _impressions(learner, predictor)
    outcome = learner.fit()
    assert outcome["check"]["users"] > 0
    if served:
        assert outcome["state"] == "fitted" and learner.weights == outcome["weights"] != from_history
        assert not outcome["check"]["worse"]
    else:
        assert outcome["state"] == "kept the blend fitted from history", outcome
        assert outcome["weights_rejected"]["freshness"] > 0.3 and outcome["check"]["worse"]
        assert learner.weights == from_history and learner.status()["serving"] == "weights fitted from history"
