"""The two-tower model on a small planted world: it learns taste (beats popularity on held-out
interactions), places never-seen items by their content near the users of their topic, reads a
metadata-only item sensibly, lets negative signals push items down, follows new signals without
retraining, and survives save/load exactly. One fit per module keeps the file fast."""

from __future__ import annotations

import numpy as np
import pytest

from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.domain.codec import signal_from_dict
from overdrive.domain.types import DEFAULT_SIGNAL_WEIGHTS, Item, Signal
from overdrive.models.collaborative_filtering.artifacts import ArtifactStore
from overdrive.models.collaborative_filtering.evaluate import evaluate_rows, make_split
from overdrive.models.collaborative_filtering.matrix import (
    aggregate_signals,
    items_by_id,
)
from overdrive.models.two_tower.features import hashed_text_vector
from overdrive.models.two_tower.model import TwoTowerModel

PARAMS = {"dim": 32, "hidden": 64, "epochs": 20, "batch_size": 256, "mixed_negatives": 64, "seed": 0}


class Planted:
    """A world of 4 topics; 20 % of items are held out of training entirely (cold)."""

    def __init__(self) -> None:
        config = WorldConfig(n_users=160, n_items=240, n_topics=4, signals_per_user=90, seed=5, end=1.7e9,
                             exploration=0.1, zipf_exponent=0.7)
        self.world = world = generate_world(config)
        self.catalog = items_by_id(world.items)
        ids = [i["id"] for i in world.items]
        text = hashed_text_vector([self.catalog[i].text for i in ids], dim=128)
        self.content = {i: {"text": text[n]} for n, i in enumerate(ids)}
        self.topic = {i: int(t) for i, t in zip(ids, world.item_topic)}
        rng = np.random.default_rng(0)
        self.cold = set(rng.choice(ids, size=len(ids) // 5, replace=False).tolist())
        self.signals = [signal_from_dict(s) for s in world.signals if s["content_id"] not in self.cold]
        inter = aggregate_signals(self.signals, signal_weights=DEFAULT_SIGNAL_WEIGHTS, items=[i for i in ids if i not in self.cold])
        self.split = make_split(inter, "stratified", seed=0)
        X = self.split.train.values.tocoo()
        pairs = {(self.split.train.user_ids[u], self.split.train.item_ids[i]) for u, i in zip(X.row, X.col)}
        self.train_signals = [s for s in self.signals if (s.user_id, s.content_id) in pairs]
        self.warm_catalog = {i: it for i, it in self.catalog.items() if i not in self.cold}
        self.warm_content = {i: c for i, c in self.content.items() if i not in self.cold}
        self.now = max(s.timestamp for s in self.signals)
        self.recent: dict[str, list[Signal]] = {}
        for s in sorted(self.train_signals, key=lambda s: -s.timestamp):
            self.recent.setdefault(s.user_id, []).append(s)
        self.user_topic = {u: int(np.argmax(world.user_topics[n])) for n, u in enumerate(world.user_ids)}


@pytest.fixture(scope="module")
def planted() -> Planted:
    return Planted()


@pytest.fixture(scope="module")
def model(planted) -> TwoTowerModel:
    m = TwoTowerModel(**PARAMS)
    m.fit(planted.train_signals, planted.warm_catalog, planted.warm_content)
    return m


def test_fit_reports_epochs_loss_and_time_holdout_recall(model, planted):
    status = model.status()
    assert status["fitted"] and status["epochs"] >= 1 and len(status["loss"]) >= status["epochs"]
    assert len(status["validation_recall"]) == len(status["validation_recall_random"]) == status["epochs"]
    validation = status["validation"]
    assert validation["criterion"] == "random"  # bag histories: a random holdout matches the objective
    assert 0.0 < validation["time_recall@10"] <= 1.0 and 0.0 < validation["random_recall@10"] <= 1.0
    assert validation["time_users"] > 20 and validation["holdout_from"] < planted.now
    assert status["loss"][0] > status["loss"][status["best_epoch"] - 1]  # it learned something
    assert status["modalities"] == ["metadata", "text"] and status["dims"]["text"] == 128
    assert status["dims"]["output"] == 32 and status["fitted_at"] and status["fit_seconds"] > 0


def test_beats_popularity_on_held_out_interactions(model, planted):
    split = planted.split
    V = model.item_vectors(split.train.item_ids, planted.catalog, planted.content)

    def two_tower(users):
        ids = [split.train.user_ids[u] for u in users]
        return model.user_vectors(ids, [planted.recent.get(u, []) for u in ids], now=planted.now) @ V.T

    counts = np.log1p(np.asarray((split.train.values > 0).sum(axis=0)).ravel()).astype(np.float32)
    tt = evaluate_rows(two_tower, split)["ndcg"]
    pop = evaluate_rows(lambda users: np.tile(counts, (len(users), 1)), split)["ndcg"]
    assert tt > 1.2 * pop, (tt, pop)


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def test_cold_items_rank_above_random_for_users_of_their_topic(model, planted):
    """Items never seen in training (not even their metadata) are scored from content alone: for
    each user, cold items of the user's main topic outrank the other cold items (AUC; random 0.5)."""
    cold = sorted(planted.cold)
    V = model.item_vectors(cold, planted.catalog, planted.content)
    topics = np.array([planted.topic[i] for i in cold])
    users = [u for u in planted.recent if len(planted.recent[u]) >= 20][:80]
    U = model.user_vectors(users, [planted.recent[u] for u in users], now=planted.now)
    aucs = []
    for n, u in enumerate(users):
        mine = topics == planted.user_topic[u]
        if mine.any() and (~mine).any():
            s = V @ U[n]
            aucs.append(_auc(s[mine], s[~mine]))
    assert np.mean(aucs) > 0.7, np.mean(aucs)


def test_an_item_with_only_metadata_gets_a_sensible_vector(model, planted):
    """Modality dropout: with its text gone, a cold item's vector still lands nearest its own
    topic's centroid (of warm item vectors), for most items."""
    warm = sorted(planted.warm_catalog)
    Vw = model.item_vectors(warm, planted.catalog, planted.content)
    centroids = np.stack([Vw[[planted.topic[i] == t for i in warm]].mean(axis=0) for t in range(4)])
    cold = sorted(planted.cold)
    meta_only = model.item_vectors(cold, planted.catalog, {})
    assert np.allclose(np.linalg.norm(meta_only, axis=1), 1.0, atol=1e-5)
    right = np.argmax(meta_only @ centroids.T, axis=1) == np.array([planted.topic[i] for i in cold])
    assert right.mean() > 0.7, right.mean()
    nothing = model.item_vectors(["no-such-item"], {}, {})  # nothing known: the "unknown item" vector
    assert nothing.shape == (1, 32) and np.isfinite(nothing).all()


def test_negative_signals_push_an_item_down(model, planted):
    user = next(u for u in planted.recent if len(planted.recent[u]) >= 30)
    recent = planted.recent[user]
    ids = sorted(planted.warm_catalog)
    V = model.item_vectors(ids, planted.catalog, planted.content)
    before = model.user_vector(user, recent, now=planted.now)
    target = ids[int(np.argmax(V @ before))]  # the item the user would be shown first
    scores = {}
    for kind in ("hide", "dislike", "skip"):
        hidden = [Signal(user, kind, target, planted.now - 1.0)] + recent
        after = model.user_vector(user, hidden, now=planted.now)
        scores[kind] = float(V[ids.index(target)] @ after)
    top = float(V[ids.index(target)] @ before)
    assert scores["hide"] < top and scores["dislike"] < top, (top, scores)


def test_user_vector_follows_a_new_signal_without_retraining(model, planted):
    """A new user: every like moves the vector toward the liked item's topic at once."""
    ids = sorted(planted.warm_catalog)
    V = model.item_vectors(ids, planted.catalog, planted.content)
    topics = np.array([planted.topic[i] for i in ids])
    first = model.user_vector("newcomer", [], now=planted.now)
    assert np.isfinite(first).all()
    liked = [i for i in ids if planted.topic[i] == 2][:3]
    recent = [Signal("newcomer", "like", i, planted.now - 10.0 * n) for n, i in enumerate(liked)]
    after = model.user_vector("newcomer", recent, now=planted.now)
    assert not np.allclose(first, after)
    s = V @ after
    assert _auc(s[topics == 2], s[topics != 2]) > 0.65
    # An item unknown to the model counts when its vector is passed in.
    fresh = model.item_vectors(["brand-new"], {"brand-new": planted.catalog[liked[0]]}, {})
    with_new = model.user_vector("newcomer", [Signal("newcomer", "like", "brand-new", planted.now)] + recent,
                                 now=planted.now, item_vectors={"brand-new": fresh[0]})
    assert not np.allclose(with_new, after)


def test_save_load_round_trip_gives_identical_scores(model, planted, tmp_path):
    store = ArtifactStore(root=tmp_path, loader=TwoTowerModel.load)
    version = store.save(model)
    loaded = store.load_current()
    assert loaded.version == version == model.version
    assert not any(p.suffix in (".pkl", ".pt", ".pickle") for p in (tmp_path / "versions" / version).iterdir())
    ids = sorted(planted.catalog)
    np.testing.assert_allclose(loaded.item_vectors(ids, planted.catalog, planted.content),
                               model.item_vectors(ids, planted.catalog, planted.content), atol=1e-6)
    for user in [*list(planted.recent)[:5], "stranger"]:
        recent = planted.recent.get(user, [])
        np.testing.assert_allclose(loaded.user_vector(user, recent, now=planted.now),
                                   model.user_vector(user, recent, now=planted.now), atol=1e-5)
    assert loaded.status()["loss"] == model.status()["loss"]


def test_every_runtime_computes_the_same_user_vectors(model, planted):
    users = list(planted.recent)[:4]
    vectors = {}
    for runtime in ("eager", "torchscript", "onnx"):
        copy = TwoTowerModel.from_arrays(*model.to_arrays())
        copy.runtime = runtime
        vectors[runtime] = np.stack([copy.user_vector(u, planted.recent[u], now=planted.now) for u in users])
        assert copy.runtime_in_use == runtime
    np.testing.assert_allclose(vectors["torchscript"], vectors["eager"], atol=1e-5)
    np.testing.assert_allclose(vectors["onnx"], vectors["eager"], atol=1e-5)


def test_added_items_are_remembered_for_sequences(model, planted):
    copy = TwoTowerModel.from_arrays(*model.to_arrays())
    item = Item(id="late", tags=("x",), author_id=planted.catalog[min(planted.warm_catalog)].author_id)
    vec = copy.add_items(["late"], {"late": item}, {})
    ids, V = copy.known_item_vectors()
    assert ids[-1] == "late" and np.allclose(V[-1], vec[0])
    a = copy.user_vector("x", [Signal("x", "like", "late", planted.now)], now=planted.now)
    b = copy.user_vector("x", [], now=planted.now)
    assert not np.allclose(a, b)
