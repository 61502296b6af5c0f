"""The one contract every Recommender passes, run against every method on the two-block matrix."""

from __future__ import annotations

import numpy as np
import pytest
from cf_fixtures import TINY_PARAMS, block_matrix

from overdrive.models.collaborative_filtering.base import (
    BaseRecommender,
    IncrementalRecommender,
    Recommender,
)
from overdrive.models.collaborative_filtering.matrix import InteractionMatrix
from overdrive.models.collaborative_filtering.registry import METHODS, create, load_recommender

PERSONALISED = [m for m in METHODS if m != "popularity"]


def fitted(method: str, matrix: InteractionMatrix, items=None) -> BaseRecommender:
    model = create(method, **TINY_PARAMS[method])
    model.fit(matrix, items=items)
    return model


@pytest.fixture(scope="module")
def models() -> dict[str, BaseRecommender]:
    return {m: fitted(m, block_matrix()) for m in METHODS}


@pytest.mark.parametrize("method", list(METHODS))
def test_implements_the_protocols(method, models):
    assert isinstance(models[method], Recommender)
    assert isinstance(models[method], IncrementalRecommender)


@pytest.mark.parametrize("method", PERSONALISED)
def test_recommends_the_missing_item_of_the_users_block(method, models):
    recs = models[method].recommend("u0", 1)
    assert [i for i, _ in recs] == ["i3"]


def test_popularity_recommends_the_popular_block(models):
    assert models["popularity"].recommend("u0", 1)[0][0] in {"i4", "i5", "i6", "i7"}


@pytest.mark.parametrize("method", list(METHODS))
def test_recommend_excludes_seen_items_unless_asked(method, models):
    recs = [i for i, _ in models[method].recommend("u0", 8)]
    assert not {"i0", "i1", "i2"} & set(recs)
    assert len(models[method].recommend("u0", 8, exclude_seen=False)) == 8


@pytest.mark.parametrize("method", list(METHODS))
def test_score_is_aligned_finite_and_never_raises_on_unknown_ids(method, models):
    model = models[method]
    ids = ["i3", "nope", "i5", "i0"]
    for user in ("u0", "stranger"):
        scores = model.score(user, ids)
        assert scores.shape == (4,)
        assert np.isfinite(scores).all()
    assert model.score("u0", []).shape == (0,)
    cold = model.score("stranger", ["i4", "i3"])  # a cold user gets the popularity prior
    assert cold[0] > cold[1]
    assert model.recommend("stranger", 2)[0][0] in {"i4", "i5", "i6", "i7"}


@pytest.mark.parametrize("method", PERSONALISED)
def test_scores_agree_with_recommend(method, models):
    model = models[method]
    scores = model.score("u0", ["i3", "i4", "i5", "i6", "i7"])
    assert int(np.argmax(scores)) == 0


@pytest.mark.parametrize("method", list(METHODS))
def test_save_load_round_trip_gives_identical_scores(method, models, tmp_path):
    model = models[method]
    model.save(tmp_path / method)
    loaded = load_recommender(tmp_path / method)
    ids = [f"i{n}" for n in range(8)] + ["unknown"]
    for user in ("u0", "u7", "stranger"):
        np.testing.assert_allclose(loaded.score(user, ids), model.score(user, ids), rtol=1e-5, atol=1e-6)
    assert loaded.recommend("u0", 3) == model.recommend("u0", 3)


@pytest.mark.parametrize("method", PERSONALISED)
def test_fold_in_moves_recommendations_toward_new_interactions(method, blocks, tmp_path):
    model = fitted(method, blocks)
    assert model.recommend("u0", 1)[0][0] == "i3"
    # u0 turns into a block-B user: block-B items outside the new row should now win.
    model.update_user("u0", {"i4": 3.0, "i5": 3.0, "i6": 3.0})
    assert model.recommend("u0", 1)[0][0] == "i7"
    # A brand-new user is folded in the same way, and survives save/load.
    model.update_user("newbie", {"i0": 2.0, "i1": 2.0, "i2": 2.0})
    assert model.recommend("newbie", 1)[0][0] == "i3"
    model.save(tmp_path / "m")
    loaded = load_recommender(tmp_path / "m")
    assert loaded.recommend("newbie", 1)[0][0] == "i3"
    np.testing.assert_allclose(loaded.score("u0", ["i3", "i7"]), model.score("u0", ["i3", "i7"]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", list(METHODS))
def test_new_items_score_through_their_anchors(method, blocks):
    model = fitted(method, blocks)
    model.add_items({"fresh": (["i1", "i2"], [1.0, 1.0])})
    scores = model.score("u0", ["fresh", "i4"])
    assert np.isfinite(scores).all()
    if method != "popularity":
        assert scores[0] > scores[1]  # anchored in u0's block
    assert "fresh" in [i for i, _ in model.recommend("u0", 8)]


def test_lightfm_scores_a_new_item_from_its_content(blocks):
    from overdrive.domain.types import Item

    items = {f"i{n}": Item(id=f"i{n}", tags=("alpha",) if n < 4 else ("beta",), author_id="a" if n < 4 else "b")
             for n in range(8)}
    model = fitted("lightfm", blocks, items=items)
    model.add_items({}, items={"fresh-a": Item(id="fresh-a", tags=("alpha",), author_id="a"),
                               "fresh-b": Item(id="fresh-b", tags=("beta",), author_id="b")})
    a, b = model.score("u0", ["fresh-a", "fresh-b"])
    assert a > b
