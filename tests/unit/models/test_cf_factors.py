"""A fold-in of many users at once (`ranking_user_vectors`) gives each user the vector a fold-in of
that user alone gives: the same pairs from the same seed, the same steps."""

from __future__ import annotations

import numpy as np

from overdrive.models.collaborative_filtering.factors import (
    RankingRow,
    ranking_user_vectors,
)


def test_users_folded_in_together_get_the_vectors_they_get_alone() -> None:
    rng = np.random.default_rng(0)
    V = rng.normal(size=(300, 16)).astype(np.float32)
    bias = rng.normal(size=300).astype(np.float32)
    start = V.mean(axis=0)
    rows = [RankingRow(rng.choice(300, size=n, replace=False), (rng.random(n) + 0.1) if u % 2 else None, start, u)
            for u, n in enumerate([5, 0, 40, 1, 120, 17, 3])]  # one user with no positives keeps `start`
    together = ranking_user_vectors(V, bias, rows, steps=60, chunk=3)  # chunks of users, the last one short
    alone = np.array([ranking_user_vectors(V, bias, [r], steps=60)[0] for r in rows])
    assert together.shape == (len(rows), 16) and together.dtype == V.dtype
    assert np.allclose(together, alone, atol=1e-5)
    assert np.array_equal(together[1], start)
    assert not np.allclose(together[4], start)  # a user with positives moved
