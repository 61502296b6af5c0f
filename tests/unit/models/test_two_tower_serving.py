"""Serving the two-tower model out of the collaborative ensemble, on a small planted world whose
topics are known: the `two_tower` component's scores and the retrieval source follow a user's
topic; items written after the fit are placed by the item tower from their content; a user's
fresh signals move their vector without a retrain; without a model nothing is said."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest

from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.domain.codec import signal_from_dict
from overdrive.models.collaborative_filtering import AdvancedCollaborativeFiltering
from overdrive.models.collaborative_filtering.matrix import items_by_id
from overdrive.services.two_tower_service import TwoTowerService

PARAMS = {"dim": 32, "hidden": 64, "epochs": 15, "batch_size": 256, "mixed_negatives": 64}


class Served:
    def __init__(self) -> None:
        self.world = world = generate_world(WorldConfig(
            n_users=150, n_items=240, n_topics=4, signals_per_user=80, seed=11, end=1.7e9, exploration=0.1,
            zipf_exponent=0.7, interest_concentration=0.2))
        ids = [i["id"] for i in world.items]
        self.topic = {i: int(t) for i, t in zip(ids, world.item_topic)}
        self.late = set(ids[::8])  # written after the fit: no signals, unknown to the model
        self.catalog = items_by_id(world.items)
        self.model = AdvancedCollaborativeFiltering(methods=("popularity", "two_tower"), params={"two_tower": PARAMS},
                                                    tune=False, fold_in_every=1, seed=0)
        self.model.fit_signals([s for s in world.signals if s["content_id"] not in self.late],
                               items={i: it for i, it in self.catalog.items() if i not in self.late})
        self.seen: dict[str, set[str]] = {}
        for s in world.signals:
            self.seen.setdefault(s["user_id"], set()).add(s["content_id"])
        # Users whose taste is one topic, clearly.
        self.focused = {u: int(np.argmax(t)) for u, t in zip(world.user_ids, world.user_topics) if t.max() > 0.7}
        self.service = TwoTowerService(ensemble=lambda: self.model)


@pytest.fixture(scope="module")
def served() -> Served:
    return Served()


def _run(coro):
    return asyncio.run(coro)


def test_scores_favour_the_users_topic(served):
    assert len(served.focused) >= 20
    wins = []
    known = [i for i in served.topic if i not in served.late]
    for user, topic in served.focused.items():
        scores = _run(served.service.score(user, known))
        assert scores is not None and scores.min() >= -1.0 and scores.max() <= 1.0
        mine = np.array([served.topic[i] == topic for i in known])
        wins.append(scores[mine].mean() > scores[~mine].mean())
    assert np.mean(wins) >= 0.9, np.mean(wins)


def test_retrieval_returns_unseen_items_of_the_users_topic(served):
    on_topic = []
    for user, topic in served.focused.items():
        got = _run(served.service.retrieve(user, 10, 0.0))
        assert len(got) == 10 and not set(got) & served.seen[user]
        on_topic.append(np.mean([served.topic[i] == topic for i in got]))
    # 4 topics: chance is about 0.25
    assert np.mean(on_topic) >= 0.7, np.mean(on_topic)


def test_items_written_after_the_fit_are_placed_by_the_item_tower(served):
    late = sorted(served.late)
    served.model.add_items({i: served.catalog[i] for i in late})
    member = served.model.members["two_tower"]
    assert set(late) <= set(member._new_item_ids())  # tower vectors, not only anchors
    aucs = []
    for user, topic in served.focused.items():
        scores = _run(served.service.score(user, late))
        mine = np.array([served.topic[i] == topic for i in late])
        if mine.any() and (~mine).any():
            aucs.append((scores[mine][:, None] > scores[~mine][None, :]).mean())
    assert np.mean(aucs) >= 0.8, np.mean(aucs)


def test_fresh_signals_move_a_new_users_vector_without_a_retrain(served):
    topic = 2
    liked = [i for i in served.topic if served.topic[i] == topic and i not in served.late][:6]
    assert _run(served.service.score("newcomer", liked)) is None  # no vector yet
    assert _run(served.service.retrieve("newcomer", 10, 0.0)) == []
    served.model.observe([signal_from_dict({"user_id": "newcomer", "signal_type": "like", "content_id": i,
                                            "timestamp": 1.7e9}) for i in liked])
    got = _run(served.service.retrieve("newcomer", 10, 0.0))
    assert len(got) == 10 and not set(got) & set(liked)
    assert np.mean([served.topic[i] == topic for i in got]) >= 0.7, got


def test_without_a_two_tower_model_nothing_is_said(served):
    for ensemble in (None, SimpleNamespace(members={"popularity": object()}, version="v1")):
        service = TwoTowerService(ensemble=lambda e=ensemble: e)
        assert _run(service.score(next(iter(served.focused)), list(served.topic))) is None
        assert _run(service.retrieve(next(iter(served.focused)), 10, 0.0)) == []
        assert service.status() == {"served": False, "version": None}


def test_similar_items_measure_tells_text_neighbours_from_random_ones():
    """The evaluation's similar-items rows (text-only held-out items, judged by co-engagement): on
    a planted world text neighbours share a topic, so they beat a random neighbour list; the
    two-tower rows are measured on the same queries."""
    from overdrive.domain.types import DEFAULT_SIGNAL_WEIGHTS
    from overdrive.models.collaborative_filtering.matrix import aggregate_signals
    from overdrive.models.two_tower import evaluate as ev
    from overdrive.models.two_tower.features import hashed_text_vector
    from overdrive.models.two_tower.model import TwoTowerModel

    world = generate_world(WorldConfig(n_users=150, n_items=200, n_topics=4, signals_per_user=60, seed=3, end=1.7e9,
                                       exploration=0.1, interest_concentration=0.2))
    catalog = items_by_id(world.items)
    ids = list(catalog)
    text = hashed_text_vector([catalog[i].text for i in ids], dim=128)
    signals = ev.parse_signals(world.signals)
    inter = aggregate_signals(signals, signal_weights=DEFAULT_SIGNAL_WEIGHTS, items=ids)
    ctx = ev.Context(signals, inter, catalog, {i: {"text": text[n]} for n, i in enumerate(ids)},
                     dict(DEFAULT_SIGNAL_WEIGHTS), None, "planted")
    cs = ev.cold_split(ctx, fraction=0.3, seed=0)
    cold = set(cs.cold)
    model = TwoTowerModel(**PARAMS, seed=0)
    model.fit(cs.train_signals, {i: it for i, it in catalog.items() if i not in cold},
              {i: c for i, c in ctx.content.items() if i not in cold})
    rows = {r["model"]: r for r in ev.similar_items(ctx, cs, model, k=5)}
    assert set(rows) == {"text_embedding", "two_tower_item_tower", "text_embedding+two_tower_item_tower"}
    assert rows["text_embedding"]["queries"] >= 40
    for row in rows.values():
        assert 0.0 < row["ndcg"] <= 1.0
    # The same measure of random neighbours (a stand-in model whose item vectors are noise).
    rng = np.random.default_rng(0)
    noise = SimpleNamespace(item_vectors=lambda ids, items, content: rng.normal(size=(len(ids), 16)))
    chance = np.mean([{r["model"]: r for r in ev.similar_items(ctx, cs, noise, k=5)}["two_tower_item_tower"]["ndcg"]
                      for _ in range(5)])
    assert rows["text_embedding"]["ndcg"] > 1.3 * chance, (rows, chance)
    assert rows["two_tower_item_tower"]["ndcg"] > 1.3 * chance, (rows, chance)
