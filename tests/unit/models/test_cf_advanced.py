"""AdvancedCollaborativeFiltering live behaviour: fold-in every N signals or on demand, new items,
cold users, negative feedback, and versioned artifacts that survive a restart."""

from __future__ import annotations

import numpy as np
import pytest
from cf_fixtures import TINY_PARAMS, block_matrix

from overdrive.config import Settings
from overdrive.domain.types import Item
from overdrive.models.collaborative_filtering import (
    AdvancedCollaborativeFiltering,
    ArtifactStore,
    ModelHandle,
)
from overdrive.models.collaborative_filtering.ensemble import fit_weights, zscore_rows

METHODS = ("popularity", "item_cosine", "als", "ease", "lightfm")
NOW = 1_700_000_000.0
CATALOG = {f"i{n}": Item(id=f"i{n}", tags=("alpha",) if n < 4 else ("beta",), author_id="a" if n < 4 else "b")
           for n in range(8)}


def make_model(fold_in_every: int = 5, *, on_demand: bool = False) -> AdvancedCollaborativeFiltering:
    model = AdvancedCollaborativeFiltering(methods=METHODS, params=TINY_PARAMS, fold_in_every=fold_in_every,
                                           fold_in_on_demand=on_demand, tune=False)
    matrix = block_matrix()
    matrix.now = NOW
    model.fit(matrix, items=CATALOG)
    return model


def sig(user, item, kind="share"):
    return {"user_id": user, "content_id": item, "signal_type": kind, "timestamp": NOW}


@pytest.fixture
def model() -> AdvancedCollaborativeFiltering:
    return make_model()


def rank_of(model, user, item):
    return [i for i, _ in model.recommend(user, 20)].index(item)


def test_fitted_suite_recommends_within_the_block(model):
    assert model.recommend("u0", 1)[0][0] == "i3"
    assert set(model.weights) == set(METHODS)
    assert sum(model.weights.values()) == pytest.approx(1.0)


def test_only_the_members_the_validation_weights_keep_are_fitted_on_all_the_data(model, tmp_path):
    kept = {n for n, w in model.weights.items() if w > 0}
    assert kept and kept != set(METHODS)  # this data drops some: otherwise the test shows nothing
    assert set(model.members) == kept
    model.save(tmp_path / "m")
    assert set(AdvancedCollaborativeFiltering.load(tmp_path / "m").members) == kept
    every = AdvancedCollaborativeFiltering(methods=METHODS, params=TINY_PARAMS, tune=False, fit_unweighted=True)
    matrix = block_matrix()
    matrix.now = NOW
    every.fit(matrix, items=CATALOG)
    assert set(every.members) == set(METHODS)  # evaluations score every member
    everything = [f"i{n}" for n in range(8)]
    assert np.allclose(every.score("u0", everything), model.score("u0", everything))  # the dropped add nothing


def test_folds_in_every_n_interactions(model):
    assert model.observe([sig("u0", "i4"), sig("u0", "i5"), sig("u0", "i6"), sig("u0", "i4")]) == 0
    assert model.status()["pending_interactions"] == 4
    everything = [f"i{n}" for n in range(8)]
    before = model.score("u0", everything)
    assert before[3] > before[7]
    assert model.observe([sig("u0", "i5")]) == 1
    status = model.status()
    assert status["pending_interactions"] == 0 and status["folds"] == 1
    after = model.score("u0", everything)
    assert after[7] - after[3] > before[7] - before[3] + 0.1  # block B gained on block A
    assert not {"i4", "i5", "i6"} & {i for i, _ in model.recommend("u0", 8)}


def test_on_demand_a_user_scored_is_folded_in_as_a_batch_would_have(tmp_path):
    batched, on_demand = make_model(fold_in_every=1_000_000), make_model(on_demand=True)
    signals = [sig("u0", "i4"), sig("u0", "i5"), sig("u0", "i6"), sig("newbie", "i0"), sig("newbie", "i1"),
               sig("u9", "i2"), sig("u9", "brand-new")]
    for m in (batched, on_demand):
        assert m.observe(signals) == 0
    batched.fold_in()
    status = on_demand.status()
    assert status["users_awaiting_fold_in"] == 3 and status["pending_interactions"] == 0
    assert all(m.user_index("newbie") is None for m in on_demand.members.values())  # merged, not folded in
    everything = [f"i{n}" for n in range(8)] + ["brand-new"]
    before = on_demand.score("u0", everything)  # as fitted: the fold-in it asks for runs in the background
    on_demand.wait_for_fold_ins()
    assert on_demand.status()["users_awaiting_fold_in"] == 2 and on_demand.status()["users_folded_in_on_demand"] == 1
    after = on_demand.score("u0", everything)
    np.testing.assert_allclose(after, batched.score("u0", everything), rtol=1e-4, atol=1e-5)
    assert not np.allclose(before, after)
    on_demand.recommend("newbie", 3)
    on_demand.wait_for_fold_ins()
    ours, theirs = on_demand.recommend("newbie", 3), batched.recommend("newbie", 3)
    assert [i for i, _ in ours] == [i for i, _ in theirs]
    np.testing.assert_allclose([v for _, v in ours], [v for _, v in theirs], rtol=1e-4, atol=1e-5)
    assert not {"i4", "i5", "i6"} & {i for i, _ in on_demand.recommend("u0", 8)}

    on_demand.save(tmp_path / "m")  # u9 still waits, and is folded in after a restart
    restarted = AdvancedCollaborativeFiltering.load(tmp_path / "m")
    assert restarted.fold_in_on_demand and restarted.status()["users_awaiting_fold_in"] == 1
    restarted.score("u9", everything)
    restarted.wait_for_fold_ins()
    np.testing.assert_allclose(restarted.score("u9", everything), batched.score("u9", everything), rtol=1e-4, atol=1e-5)
    assert restarted.status()["users_awaiting_fold_in"] == 0
    on_demand.forget_user("u9")
    assert on_demand.status()["users_awaiting_fold_in"] == 0


def test_new_user_is_served_popularity_then_personalised_after_fold_in(model):
    cold = model.recommend("newbie", 3)
    assert {i for i, _ in cold} <= {"i4", "i5", "i6", "i7"}
    assert np.isfinite(model.score("newbie", ["i0", "nothing"])).all()
    model.observe([sig("newbie", "i0"), sig("newbie", "i1")])
    model.fold_in()
    assert model.recommend("newbie", 1)[0][0] in {"i2", "i3"}


def test_catalog_item_added_after_fit_is_scored_from_its_content(model):
    model.add_items([{"id": "fresh", "tags": ["alpha"], "author_id": "a"}])
    a_user = model.score("u0", ["fresh", "i4", "i5"])
    assert np.isfinite(a_user).all() and a_user[0] > a_user[1]
    assert "fresh" in [i for i, _ in model.recommend("u0", 4)]


def test_unknown_item_with_interactions_gets_neighbour_scores(model):
    model.observe([sig("u4", "brand-new"), sig("u5", "brand-new"), sig("u6", "brand-new")])
    model.fold_in()
    b_user = model.score("u7", ["brand-new", "i0", "i1"])
    assert b_user[0] > b_user[1] and b_user[0] > b_user[2]
    assert "brand-new" not in [i for i, _ in model.recommend("u4", 8)]  # seen by u4
    assert "brand-new" in [i for i, _ in model.recommend("u7", 8)]
    assert model.status()["items_added_since_fit"] == 1


def test_negative_feedback_sinks_the_item(model):
    model.observe([sig("u0", "i3", "hide")])
    model.fold_in()
    scores = model.score("u0", ["i3", "i4", "i5"])
    assert scores[0] == scores.min()
    assert "i3" not in [i for i, _ in model.recommend("u0", 8)]


def test_artifacts_are_versioned_and_survive_restart(model, tmp_path):
    store = ArtifactStore(root=tmp_path / "cf", loader=AdvancedCollaborativeFiltering.load, keep=2)
    assert store.load_current() is None
    model.observe([sig("u0", "i4"), sig("newbie", "i0")])  # pending, not yet folded
    model.add_items([{"id": "fresh", "tags": ["alpha"]}])
    v1 = store.save(model)
    assert store.current_version() == v1 == model.version
    restarted = store.load_current()
    ids = [f"i{n}" for n in range(8)] + ["fresh", "unknown"]
    for user in ("u0", "u9", "stranger"):
        np.testing.assert_allclose(restarted.score(user, ids), model.score(user, ids), rtol=1e-5, atol=1e-6)
        assert restarted.recommend(user, 5) == model.recommend(user, 5)
    assert restarted.status()["pending_interactions"] == 2 and restarted.version == v1
    restarted.fold_in()  # the pending signals were not lost
    assert restarted.recommend("newbie", 1)[0][0] in {"i1", "i2", "i3", "fresh"}

    handle = ModelHandle(store=store, model=restarted)
    v2 = handle.publish(restarted)
    v3 = store.save(make_model())
    assert store.versions() == sorted([v2, v3]) and v1 not in store.versions()  # keep=2
    assert handle.refresh() and handle.get().version == v3
    store.activate(v2)
    assert handle.refresh() and handle.get().version == v2


def test_a_failed_save_leaves_the_current_version_alone(model, tmp_path):
    store = ArtifactStore(root=tmp_path / "cf", loader=AdvancedCollaborativeFiltering.load)
    v1 = store.save(model)

    class Broken:
        version = None

        def save(self, path):
            (path / "members").mkdir(parents=True)
            raise OSError("disk full")

    with pytest.raises(OSError):
        store.save(Broken())
    assert store.current_version() == v1 and store.versions() == [v1]
    assert not list((tmp_path / "cf").glob(".tmp-*"))


def test_fit_from_wire_signals_with_settings():
    settings = Settings.load({})
    model = AdvancedCollaborativeFiltering(signal_weights=settings.signal_weights, half_life_days=settings.interest_half_life_days,
                                           methods=("popularity", "item_cosine"), tune=False)
    signals = [sig(f"u{u}", f"i{i}", "like") for u in range(6) for i in range(4) if (u + i) % 4]
    signals += [sig(f"u{u}", f"i{i}", "like") for u in range(6, 12) for i in range(4, 8) if (u + i) % 4]
    matrix = model.fit_signals(signals, items=[{"id": f"i{n}"} for n in range(9)])
    assert matrix.shape == (12, 9) and model.status()["n_interactions"] == 36
    assert model.recommend("u1", 1)[0][0] == "i3"


def test_weight_fitting_earns_weights_and_falls_back_to_the_best_member():
    rng = np.random.default_rng(0)
    relevant = np.zeros((50, 40), dtype=np.float32)
    for u in range(50):
        relevant[u, rng.choice(40, size=4, replace=False)] = 1.0
    candidates = np.ones_like(relevant, dtype=bool)
    good = relevant + 0.1 * rng.random(relevant.shape)
    noise = rng.random(relevant.shape)
    import scipy.sparse as sp

    fitted = fit_weights({"noise": zscore_rows(noise), "good": zscore_rows(good)}, candidates, sp.csr_matrix(relevant))
    assert fitted.best_member == "good"
    assert fitted.weights == {"noise": 0.0, "good": 1.0}
    assert fitted.validation_ndcg["ensemble"] == pytest.approx(fitted.validation_ndcg["good"])
    # Two partial experts: each knows half the relevant items; the blend beats both.
    half_a = relevant * (np.arange(40) < 20) + 0.05 * rng.random(relevant.shape)
    half_b = relevant * (np.arange(40) >= 20) + 0.05 * rng.random(relevant.shape)
    blend = fit_weights({"a": zscore_rows(half_a), "b": zscore_rows(half_b)}, candidates, sp.csr_matrix(relevant))
    assert min(blend.weights.values()) > 0
    assert blend.validation_ndcg["ensemble"] > max(blend.validation_ndcg["a"], blend.validation_ndcg["b"])


def test_cached_user_scores_equal_scoring_each_member_afresh(model):
    ids = ["i6", "i0", "i3", "i7", "i1"]
    for _ in range(2):  # the second call is served from the per-user cache
        expected = sum(w * zscore_rows(model.members[m].score("u2", ids)) for m, w in model.weights.items() if w > 0)
        assert np.allclose(model.score("u2", ids), expected, atol=1e-5)
