"""Data for the collaborative-filtering tests: a hand-made two-block matrix whose answer is known,
and a small synthetic world with planted topics. Imported by conftest.py and by tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from overdrive.config import DEFAULT_SIGNAL_WEIGHTS
from overdrive.data.synthetic import WorldConfig, generate_world
from overdrive.models.collaborative_filtering.evaluate import EvalSplit, make_split
from overdrive.models.collaborative_filtering.matrix import (
    InteractionMatrix,
    aggregate_signals,
    items_by_id,
)

# Settings small enough for a 12 × 8 matrix (the defaults are tuned for thousands of users).
TINY_PARAMS: dict[str, dict] = {
    "popularity": {},
    "nmf": {"n_factors": 2},
    "item_cosine": {},
    "item_bm25": {},
    "user_cosine": {"k": 5},
    "user_bm25": {"k": 5},
    "als": {"n_factors": 4, "regularization": 0.1, "alpha": 5.0},
    "bpr": {"n_factors": 8, "early_stopping": False, "iterations": 300, "learning_rate": 0.05, "popularity_weight": 0.0},
    "lightfm": {"n_factors": 8, "early_stopping": False, "epochs": 150},
    "ease": {"l2": 1.0},
    "two_tower": {"dim": 16, "hidden": 32, "epochs": 60, "batch_size": 16, "validation_fraction": 0.0,
                  "id_dropout": 0.1, "mixed_negatives": 8},
}


def block_matrix() -> InteractionMatrix:
    """Block A: users u0-u3 × items i0-i3; block B (twice the users, so its items are the popular
    ones): users u4-u11 × items i4-i7. Each user misses one item of their block; u0 misses i3.

    Every personalised method must recommend i3 to u0; popularity would pick a block-B item.
    """
    dense = np.zeros((12, 8), dtype=np.float32)
    for u in range(4):
        dense[u, :4] = 2.0
        dense[u, 3 - (u % 4)] = 0.0
    for u in range(4, 12):
        dense[u, 4:] = 2.0
        dense[u, 4 + (u % 4)] = 0.0
    return InteractionMatrix.from_dense(dense)


@dataclass(frozen=True)
class SmallWorld:
    split: EvalSplit
    items: dict
    world: object


def build_small_world() -> SmallWorld:
    """~300 users, 400 items, 6 topics, ~17k (user, item) rows, split 75/25 per user. Less
    exploration and a flatter popularity curve than the defaults, so that taste, not popularity,
    decides most of what a user touches — the structure the methods are meant to recover."""
    config = WorldConfig(n_users=300, n_items=400, n_topics=6, signals_per_user=140, seed=3, end=1.7e9,
                         exploration=0.1, zipf_exponent=0.7)
    world = generate_world(config)
    inter = aggregate_signals(world.signals, signal_weights=DEFAULT_SIGNAL_WEIGHTS, items=[i["id"] for i in world.items])
    return SmallWorld(make_split(inter, "stratified", seed=0), items_by_id(world.items), world)
