"""Ranking metrics against hand-computed values, and the two evaluation splits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from overdrive.models.metrics import (
    catalog_coverage,
    mean_average_precision,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)
from overdrive.models.splits import leave_last_out, stratified_split

RECS = [[1, 2, 3, 4], [7, 8, 9, 10], [1, 2, 3, 4]]
RELEVANT = [{1, 3, 5}, {10}, set()]  # the third user has nothing relevant and is skipped


def test_metrics_match_hand_computed_values():
    ndcg_a = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    ndcg_b = 1 / math.log2(5)
    assert ndcg_at_k(RECS, RELEVANT, k=4) == pytest.approx((ndcg_a + ndcg_b) / 2)
    assert precision_at_k(RECS, RELEVANT, k=4) == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert recall_at_k(RECS, RELEVANT, k=4) == pytest.approx((2 / 3 + 1) / 2)
    # AP divides by |relevant| (Recommenders' `map`): ((1/1 + 2/3) / 3 + (1/4) / 1) / 2
    assert mean_average_precision(RECS, RELEVANT, k=4) == pytest.approx(((1 + 2 / 3) / 3 + 0.25) / 2)


def test_cutoff_and_perfect_lists():
    perfect = ranking_metrics([[1, 2, 9]], [{1, 2}], k=2)
    assert perfect == {"ndcg": 1.0, "precision": 1.0, "recall": 1.0, "map": 1.0}
    assert precision_at_k([[9, 1]], [{1}], k=1) == 0.0
    assert ranking_metrics([[1]], [set()], k=10)["ndcg"] == 0.0


def test_catalog_coverage():
    assert catalog_coverage(RECS, 20) == pytest.approx(8 / 20)
    assert catalog_coverage(np.array([[0, 1], [1, 2]]), 10) == pytest.approx(0.3)


def test_stratified_split_is_per_user_disjoint_and_deterministic():
    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(50), rng.integers(1, 30, size=50))
    rng.shuffle(users)
    train, test = stratified_split(users, ratio=0.75, seed=7)
    assert np.intersect1d(train, test).size == 0
    assert np.union1d(train, test).size == users.size
    for u in range(50):
        n = int((users == u).sum())
        assert int((users[train] == u).sum()) == math.floor(0.75 * n + 0.5)
    again_train, again_test = stratified_split(users, ratio=0.75, seed=7)
    np.testing.assert_array_equal(train, again_train)
    np.testing.assert_array_equal(test, again_test)
    other_train, _ = stratified_split(users, ratio=0.75, seed=8)
    assert not np.array_equal(train, other_train)


def test_leave_last_out_holds_out_each_users_latest_row():
    users = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    ts = np.array([5.0, 9.0, 1.0, 3.0, 2.0, 7.0, 4.0, 4.0])
    train, test = leave_last_out(users, ts)
    assert test.tolist() == [1, 3, 7]  # user 2 has one row and keeps it; ties go to the later row
    assert sorted(train.tolist() + test.tolist()) == list(range(8))
