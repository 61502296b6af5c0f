"""Tuned hyperparameters are remembered with the data size they were chosen on, and a retrain on
data of a similar size adopts them instead of searching again; a search keeps to its budget."""

from __future__ import annotations

import pytest

from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.models.collaborative_filtering import AdvancedCollaborativeFiltering
from overdrive.models.collaborative_filtering.base import BaseRecommender
from overdrive.models.collaborative_filtering.ease import EASERecommender
from overdrive.models.collaborative_filtering.tuning_memo import DataSize, TuningMemo

METHODS = ("ease", "item_cosine")  # both search a grid on a holdout
SEARCHED = ["ease", "neighbourhood"]  # their classes, as `_tune_on_holdout` sees them


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every member that ran its grid search."""
    calls: list[str] = []
    search = BaseRecommender._tune_on_holdout

    def counted(self, matrix, items):
        calls.append(self.name)
        return search(self, matrix, items)

    monkeypatch.setattr(BaseRecommender, "_tune_on_holdout", counted)
    return calls


def fitted(memo: TuningMemo, users: int, seed: int = 1) -> AdvancedCollaborativeFiltering:
    world = generate_world(WorldConfig(n_users=users, n_items=150, signals_per_user=30, seed=seed, end=1.7e9))
    model = AdvancedCollaborativeFiltering(methods=METHODS, tune=True, tuning_memo=memo)
    model.fit_signals(world.signals, items=world.items, now=1.7e9)
    return model


def test_a_retrain_on_similar_data_adopts_what_the_search_chose(tmp_path, searches) -> None:
    memo = TuningMemo(tmp_path / "tuning.json")
    first = fitted(memo, users=120)
    assert sorted(searches) == SEARCHED
    chosen = first.status()["tuning"]
    assert all("params" in chosen[m] and "reused_from" not in chosen[m] for m in METHODS)

    searches.clear()
    again = fitted(memo, users=120, seed=2)  # other signals, much the same size
    assert searches == []
    reused = again.status()["tuning"]
    for method in METHODS:
        assert reused[method]["params"] == chosen[method]["params"]
        assert reused[method]["reused_from"]["users"] == 120
    # the adopted values are the members' own: EASE's λ is the one the first search picked
    assert again.members["ease"].l2 == first.members["ease"].l2 == chosen["ease"]["params"]["l2"]


def test_data_that_grew_is_searched_again(tmp_path, searches) -> None:
    memo = TuningMemo(tmp_path / "tuning.json")
    fitted(memo, users=100)
    searches.clear()
    grown = fitted(memo, users=200)
    assert sorted(searches) == SEARCHED
    assert all("reused_from" not in t for t in grown.status()["tuning"].values())
    assert memo.recall("ease", _size(grown)) is not None  # what the new search chose replaced the old


def test_an_unreadable_memo_means_searching(tmp_path, searches) -> None:
    path = tmp_path / "tuning.json"
    path.write_text("{not json")
    model = fitted(TuningMemo(path), users=100)
    assert sorted(searches) == SEARCHED
    assert all(TuningMemo(path).recall(m, _size(model)) is not None for m in METHODS)  # written anew


def test_similar_means_every_size_within_a_quarter() -> None:
    base = DataSize(users=1000, items=500, interactions=50_000)
    assert base.similar(DataSize(1200, 450, 60_000))
    assert not base.similar(DataSize(1300, 500, 50_000))
    assert not base.similar(DataSize(1000, 500, 70_000))
    assert not base.similar(DataSize(0, 500, 50_000))


def _size(model: AdvancedCollaborativeFiltering) -> DataSize:
    status = model.status()
    return DataSize(status["n_users"], status["n_items"], status["n_interactions"])


def test_a_search_stops_at_its_budget_keeping_the_best_tried(tmp_path, searches) -> None:
    world = generate_world(WorldConfig(n_users=100, n_items=150, signals_per_user=30, seed=1, end=1.7e9))
    hurried = AdvancedCollaborativeFiltering(methods=("ease",), tune=True, tune_budget_s=1e-9)
    hurried.fit_signals(world.signals, items=world.items, now=1.7e9)
    tuning = hurried.status()["tuning"]["ease"]
    assert (tuning["tried"], tuning["grid"]) == (1, len(EASERecommender.TUNING_GRID))
    assert tuning["params"] == {"l2": 100.0}  # the first grid entry, the only one tried
    whole = AdvancedCollaborativeFiltering(methods=("ease",), tune=True)
    whole.fit_signals(world.signals, items=world.items, now=1.7e9)
    assert whole.status()["tuning"]["ease"]["tried"] == len(EASERecommender.TUNING_GRID)


@pytest.mark.parametrize("method, chosen", [("bpr", "iterations"), ("lightfm", "epochs")])
def test_epoch_searches_inside_a_fit_stop_at_the_budget_too(method: str, chosen: str) -> None:
    """BPR and LightFM pick their epochs by checking a holdout every few epochs while they train:
    past the budget they stop after the first check, keeping what it found."""
    world = generate_world(WorldConfig(n_users=100, n_items=150, signals_per_user=30, seed=1, end=1.7e9))
    hurried = AdvancedCollaborativeFiltering(methods=(method,), tune=True, tune_budget_s=1e-9)
    hurried.fit_signals(world.signals, items=world.items, now=1.7e9)
    tuning = hurried.status()["tuning"][method]
    first_check = hurried.members[method].check_every
    assert tuning["params"][chosen] == first_check, tuning
    whole = AdvancedCollaborativeFiltering(methods=(method,), tune=True)
    whole.fit_signals(world.signals, items=world.items, now=1.7e9)
    assert whole.status()["tuning"][method]["seconds"] > tuning["seconds"]


def test_the_twin_refitted_on_other_signals_keeps_members_tuning_and_weights_without_searching(searches) -> None:
    world = generate_world(WorldConfig(n_users=120, n_items=150, signals_per_user=30, seed=4, end=1.7e9))
    model = AdvancedCollaborativeFiltering(methods=(*METHODS, "popularity"), tune=True)
    model.fit_signals(world.signals, items=world.items)
    searched = list(searches)
    kept = {n: w for n, w in model.weights.items() if w > 0}
    twin = model.refitted(world.signals, items=world.items)
    assert searches == searched  # no grid search, no validation fits
    assert twin.weights == kept and set(twin.members) == set(kept)
    for name in kept:
        assert twin.members[name].frozen_config() == model.members[name].frozen_config()
    user, items = world.signals[0]["user_id"], [i["id"] for i in world.items]
    assert twin.score(user, items) == pytest.approx(model.score(user, items), abs=1e-5)  # same data: same model
    older = twin.refitted(world.signals[: len(world.signals) // 2], items=world.items)
    assert older.status()["n_interactions"] < model.status()["n_interactions"]
