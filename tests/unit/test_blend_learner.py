"""The learned blend: weights fitted from logged rankings and the clicks that followed them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from overdrive.config import DEFAULT_SIGNAL_WEIGHTS
from overdrive.domain.types import COMPONENTS, RankedItem, Signal
from overdrive.domain.weighting import SignalWeighting
from overdrive.services.blend_learner import BlendLearner
from overdrive.domain.types import RankResult


def _learner(tmp_path: Path, **kw) -> BlendLearner:
    return BlendLearner(model_dir=tmp_path / "blend", weighting=SignalWeighting(DEFAULT_SIGNAL_WEIGHTS), **kw)


def _show(learner: BlendLearner, user: str, rows: list[tuple[str, dict[str, float]]], strategy: str = "enhanced") -> None:
    items = [RankedItem(id=i, score=0.0, rank=pos, scores={}, components=c) for pos, (i, c) in enumerate(rows, start=1)]
    learner.observe(RankResult(user_id=user, items=items, strategy=strategy, request_id="r", processing_time_ms=1.0,
                               candidates_considered=len(items)))


def _click(learner: BlendLearner, user: str, item: str, stype: str = "like") -> None:
    learner.on_applied([Signal(user_id=user, signal_type=stype, content_id=item, timestamp=0.0)])


def test_the_component_that_predicts_clicks_gets_the_weight(tmp_path: Path) -> None:
    """Clicks follow `collaborative`; `freshness` is noise; `real_time` is anti-correlated."""
    rng = np.random.default_rng(0)
    learner = _learner(tmp_path)
    for u in range(200):
        rows = []
        for n in range(10):
            cf, fresh = rng.random(), rng.random()
            rows.append((f"i{u}-{n}", {"collaborative": cf, "freshness": fresh, "real_time": 1 - cf,
                                       "content_based": 0.0, "user_interests": 0.0}))
        _show(learner, f"u{u}", rows)
        for item, comps in rows:
            if rng.random() < comps["collaborative"] ** 3:
                _click(learner, f"u{u}", item)
    assert learner.weights is None
    outcome = learner.fit()
    assert outcome["state"] == "fitted"
    weights = learner.weights
    assert set(weights) == set(COMPONENTS) and abs(sum(weights.values()) - 1) < 1e-5
    assert weights["collaborative"] > 0.8 and weights["real_time"] == 0.0
    # Saved, and served again after a restart.
    assert json.loads((tmp_path / "blend" / "weights.json").read_text())["weights"] == weights
    assert _learner(tmp_path).weights == weights


def test_negative_signals_and_other_strategies_do_not_count(tmp_path: Path) -> None:
    learner = _learner(tmp_path, min_positives=1)
    _show(learner, "u", [("a", {"freshness": 1.0}), ("b", {"freshness": 0.0})])
    _show(learner, "u", [("c", {"freshness": 1.0})], strategy="freshness")  # single-component: not logged
    _click(learner, "u", "a", "hide")
    _click(learner, "u", "c", "like")
    assert learner.status()["impressions_logged"] == 2
    assert learner.status()["impressions_clicked"] == 0
    assert learner.fit()["state"] == "skipped" and learner.weights is None


def test_the_log_is_bounded(tmp_path: Path) -> None:
    learner = _learner(tmp_path, capacity=5)
    for n in range(3):
        _show(learner, "u", [(f"i{n}-{k}", {"collaborative": 1.0}) for k in range(4)])
    assert learner.status()["impressions_logged"] == 4  # whole rankings leave: the last one fits
    _click(learner, "u", "i0-0")  # evicted: nothing to label
    _click(learner, "u", "i1-3")
    assert learner.status()["impressions_clicked"] == 0
    _click(learner, "u", "i2-3")
    assert learner.status()["impressions_clicked"] == 1


def test_little_feedback_only_nudges_the_configured_weights(tmp_path: Path) -> None:
    prior = {"content_based": 0.3, "collaborative": 0.25, "real_time": 0.25, "user_interests": 0.1, "freshness": 0.1}
    learner = _learner(tmp_path, prior=prior, prior_clicks=100, min_positives=1)
    for u in range(25):  # 25 clicks, each on the freshest of two items
        _show(learner, f"u{u}", [(f"a{u}", {"freshness": 1.0}), (f"b{u}", {"freshness": 0.0})])
        _click(learner, f"u{u}", f"a{u}")
    fitted = learner.fit()
    assert fitted["fitted_share"] == 0.2
    assert fitted["weights"]["freshness"] == pytest.approx(0.2 * 1.0 + 0.8 * 0.1, abs=1e-4)
    assert fitted["weights"]["content_based"] == pytest.approx(0.8 * 0.3, abs=1e-4)


def test_the_fit_does_not_depend_on_the_order_concurrent_rankings_were_logged_in(tmp_path: Path) -> None:
    """Rankings served concurrently are logged in the order they finish; the weights must not care."""
    rng = np.random.default_rng(0)
    shown = []
    for u in range(60):
        rows = [(f"i{u}-{n}", {c: float(rng.random()) for c in COMPONENTS}) for n in range(30)]
        shown.append((f"u{u}", rows, [i for i, comps in rows if rng.random() < comps["collaborative"] ** 2]))
    weights = []
    for seed, folder in ((None, "a"), (1, "b"), (2, "c")):
        order = range(len(shown)) if seed is None else np.random.default_rng(seed).permutation(len(shown))
        learner = _learner(tmp_path / folder)
        for n in order:
            user, rows, clicked = shown[n]
            _show(learner, user, rows)
            for item in clicked:
                _click(learner, user, item)
        assert learner.fit()["state"] == "fitted"
        weights.append(learner.weights)
    assert weights[0] == weights[1] == weights[2]


def test_weights_fitted_before_a_component_existed_are_served_with_it_at_zero(tmp_path: Path) -> None:
    older = {c: 1.0 / (len(COMPONENTS) - 1) for c in COMPONENTS if c != "two_tower"}
    (tmp_path / "blend").mkdir()
    (tmp_path / "blend" / "weights.json").write_text(json.dumps({"weights": older}))
    assert _learner(tmp_path).weights == {**older, "two_tower": 0.0}
    (tmp_path / "blend" / "weights.json").write_text(json.dumps({"weights": {**older, "gone": 0.1}}))
    assert _learner(tmp_path).weights is None  # a component we do not know: not ours to serve
