"""Blend weights from pairs: which component-score differences predict that an item was taken.

A blend only ever orders one request's candidates, so it is fitted on pairs within a ranking:
every clicked item against (a sample of) the unclicked ones, each pair as the difference of the
two items' component scores. A logistic regression without intercept (scikit-learn) on those
differences, each pair taken both ways round, gives one coefficient per component; clipped at
zero they are the blend's weights before normalising. Used on logged rankings (`blend_learner`)
and on replayed history (`history_blend`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

PAIRS_PER_CLICK = 20  # unclicked items each clicked one is paired with (sampled)


def pairs(rankings: Iterable[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Clicked-minus-unclicked component rows within each ranking (`(scores, clicked)`: one row of
    component scores per item and a boolean mask), and how many clicks were used."""
    diffs, clicks, width = [], 0, None
    for scores, clicked in rankings:
        width = scores.shape[1]
        unclicked = scores[~clicked]
        if not clicked.any() or not len(unclicked):
            continue
        clicks += int(clicked.sum())
        for row in scores[clicked]:
            picked = unclicked[rng.choice(len(unclicked), size=min(PAIRS_PER_CLICK, len(unclicked)), replace=False)]
            diffs.append(row - picked)
    return (np.vstack(diffs) if diffs else np.empty((0, width or 0))), clicks


def load_fitter() -> None:
    """Import the fitting library now. A process that may fit (any API process: `POST
    /models/train` fits the blend on its impressions) holds its ~17 MiB from the start, rather
    than stepping up by that much whenever its first fit comes."""
    import sklearn.linear_model  # noqa: F401


def coefficients(x: np.ndarray) -> np.ndarray:
    """The logistic regression's coefficient per component (may be negative) on pair differences."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(fit_intercept=False, max_iter=1000)
    return model.fit(np.vstack([x, -x]), np.r_[np.ones(len(x)), np.zeros(len(x))]).coef_[0]
