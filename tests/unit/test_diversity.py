"""Diversity re-ranking: MMR over similarity, and the per-author cap in the top 10."""

from __future__ import annotations

import numpy as np
import pytest

from overdrive.domain.types import Item
from overdrive.services.diversity import DiversityPolicy, diversify, similarity_matrix

RELEVANCE_ONLY = DiversityPolicy(mmr_lambda=1.0, max_per_author=0)


def test_relevance_only_keeps_the_blend_order() -> None:
    rel = np.array([0.9, 0.8, 0.7, 0.1])
    order = diversify(rel, np.ones((4, 4)), [None] * 4, limit=3, policy=RELEVANCE_ONLY)
    assert order == [0, 1, 2]


def test_mmr_lifts_a_different_item_above_near_duplicates() -> None:
    items = [Item(id="a", tags=("cats",)), Item(id="b", tags=("cats",)), Item(id="c", tags=("cars",))]
    sim = similarity_matrix(items, {})
    assert sim[0, 1] == pytest.approx(1.0) and sim[0, 2] < 0.6  # same tags and type vs only the type in common
    rel = np.array([1.0, 0.95, 0.8])
    assert diversify(rel, sim, [None] * 3, limit=3, policy=RELEVANCE_ONLY) == [0, 1, 2]
    # Gain λ·rel − (1−λ)·max sim with rel min-max scaled over the pool: c scales to 0, b stays second …
    assert diversify(rel, sim, [None] * 3, limit=3, policy=DiversityPolicy(mmr_lambda=0.7, max_per_author=0)) == [0, 1, 2]
    # … but with a weak item in the pool c (0.7·0.8 − 0.3·0.5) beats b (0.7·0.95 − 0.3·1).
    items.append(Item(id="d", tags=("dogs",), type="image"))
    sim = similarity_matrix(items, {})
    rel = np.append(rel, 0.0)
    assert diversify(rel, sim, [None] * 4, limit=3, policy=DiversityPolicy(mmr_lambda=0.7, max_per_author=0)) == [0, 2, 1]


def test_content_embeddings_decide_similarity_where_both_items_have_one() -> None:
    items = [Item(id="a", tags=("x",)), Item(id="b", tags=("x",)), Item(id="c", tags=("y",))]
    vectors = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([2.0, 0.0])}
    sim = similarity_matrix(items, vectors)
    assert np.allclose(sim, [[1, 0, 1], [0, 1, 0], [1, 0, 1]])
    partial = similarity_matrix(items, {"a": vectors["a"]})  # b, c fall back to tags and type
    assert partial[0, 1] == pytest.approx(1.0) and partial[1, 2] < 0.6


def test_author_cap_holds_the_top_ten_to_k_per_author() -> None:
    authors = ["kit"] * 8 + ["ann", "bob", "cy", "dee", "eve", "fay", "gus"]
    rel = np.linspace(1.0, 0.1, len(authors))  # kit's items are all the most relevant
    order = diversify(rel, np.eye(len(authors)), authors, limit=12, policy=DiversityPolicy(mmr_lambda=1.0, max_per_author=3))
    top10 = [authors[i] for i in order[:10]]
    assert top10.count("kit") == 3 and order[:3] == [0, 1, 2]  # kit's best three still lead
    assert [authors[i] for i in order[10:]] == ["kit", "kit"]  # the cap applies to the top 10 only


def test_author_cap_gives_way_when_nobody_else_is_left() -> None:
    order = diversify(np.array([0.5, 0.4, 0.3, 0.2]), np.eye(4), ["kit"] * 4, limit=4,
                      policy=DiversityPolicy(mmr_lambda=1.0, max_per_author=1))
    assert order == [0, 1, 2, 3]
