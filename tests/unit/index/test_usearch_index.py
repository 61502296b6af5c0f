"""UsearchIndex against the VectorIndex contract: add, search, update, remove, persist, reload."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from overdrive.index import UsearchIndex, VectorIndex

DIM = 16


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def vectors() -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(0)
    return [f"item-{i}" for i in range(300)], _unit(rng, 300)


def _exact(ids: list[str], mat: np.ndarray, q: np.ndarray, k: int) -> list[str]:
    return [ids[i] for i in np.argsort(-(mat @ q))[:k]]


def test_satisfies_the_protocol() -> None:
    assert isinstance(UsearchIndex(dim=DIM), VectorIndex)
    index: VectorIndex = UsearchIndex(dim=DIM)
    assert len(index) == 0 and index.search(np.ones(DIM), 5) == []


def test_search_finds_true_neighbours_with_cosine_scores(vectors) -> None:
    ids, mat = vectors
    index = UsearchIndex(dim=DIM)
    index.upsert(ids, mat * 3.0)  # scale does not matter: cosine
    assert len(index) == 300 and "item-5" in index
    hits = index.search(mat[5], 10)
    assert hits[0][0] == "item-5" and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    exact = _exact(ids, mat, mat[5], 10)
    assert len(set(i for i, _ in hits) & set(exact)) >= 9  # HNSW recall@10 on 300 points
    np.testing.assert_allclose(index.get("item-5"), mat[5], atol=1e-6)
    assert index.get("nope") is None


def test_exclude_and_k(vectors) -> None:
    ids, mat = vectors
    index = UsearchIndex(dim=DIM)
    index.upsert(ids, mat)
    exact = _exact(ids, mat, mat[0], 6)
    hits = index.search(mat[0], 5, exclude={"item-0", exact[1]})
    got = [i for i, _ in hits]
    assert len(got) == 5 and "item-0" not in got and exact[1] not in got
    assert len(index.search(mat[0], 1000)) == 300
    assert index.search(mat[0], 0) == [] and index.search(np.zeros(DIM), 5) == []


def test_update_and_remove(vectors) -> None:
    ids, mat = vectors
    index = UsearchIndex(dim=DIM)
    index.upsert(ids[:10], mat[:10])
    index.upsert(["item-3"], mat[200:201])  # replaced, not duplicated
    assert len(index) == 10
    assert index.search(mat[200], 1)[0][0] == "item-3"
    assert index.search(mat[3], 1)[0][1] < 0.5  # the old vector is gone
    assert index.remove("item-3") and not index.remove("item-3")
    assert "item-3" not in index and len(index) == 9
    assert all(i != "item-3" for i, _ in index.search(mat[200], 10))
    index.upsert(["item-3"], mat[3:4])  # re-add after removal
    assert index.search(mat[3], 1)[0] == ("item-3", pytest.approx(1.0, abs=1e-5))
    index.upsert(["item-4"], np.zeros((1, DIM)))  # no content → not searchable
    assert "item-4" not in index
    with pytest.raises(ValueError):
        index.upsert(["a", "b"], mat[:1])


def test_persist_and_reload(tmp_path: Path, vectors) -> None:
    ids, mat = vectors
    path = tmp_path / "index"
    index = UsearchIndex(dim=DIM, path=path)
    index.upsert(ids, mat)
    index.remove("item-7")
    index.save()
    index.upsert(["late"], mat[:1])  # not saved
    reloaded = UsearchIndex(dim=DIM, path=path)
    assert len(reloaded) == 299 and "item-7" not in reloaded and "late" not in reloaded
    assert reloaded.search(mat[42], 3) == index.search(mat[42], 3)
    reloaded.upsert(["new"], mat[7:8])  # keys keep growing after a reload
    assert reloaded.search(mat[7], 1)[0][0] == "new"
    reloaded.save()
    manifest = json.loads((path / "MANIFEST.json").read_text())
    assert manifest["generation"] == 2 and manifest["count"] == 300
    assert sorted(p.name for p in path.iterdir()) == ["MANIFEST.json", "index-2.usearch", "keys-2.json"]
    with pytest.raises(ValueError, match="dim"):
        UsearchIndex(dim=DIM + 1, path=path)


def test_a_torn_save_leaves_the_previous_generation_loadable(tmp_path: Path, vectors) -> None:
    ids, mat = vectors
    path = tmp_path / "index"
    index = UsearchIndex(dim=DIM, path=path)
    index.upsert(ids[:50], mat[:50])
    index.save()
    # a crash after writing the next generation's files but before the manifest switched
    (path / "index-2.usearch").write_bytes(b"partial")
    (path / "keys-2.json").write_text("{")
    reloaded = UsearchIndex(dim=DIM, path=path)
    assert len(reloaded) == 50 and reloaded.search(mat[1], 1)[0][0] == "item-1"


def test_autosave(tmp_path: Path, vectors) -> None:
    ids, mat = vectors
    index = UsearchIndex(dim=DIM, path=tmp_path / "ix", autosave_every=20)
    index.upsert(ids[:25], mat[:25])
    assert len(UsearchIndex(dim=DIM, path=tmp_path / "ix")) == 25


def test_get_many_matches_get(tmp_path) -> None:
    import numpy as np

    from overdrive.index.usearch_index import UsearchIndex

    index = UsearchIndex(dim=4)
    vectors = np.eye(4, dtype=np.float32) * np.array([[3.0], [1.0], [0.5], [1.0]], dtype=np.float32)
    vectors[2, 1] = 0.5
    index.upsert(["a", "b", "c"], vectors[:3])
    got = index.get_many(["c", "zz", "a", "a"])
    assert set(got) == {"a", "c"}
    for item_id in got:
        assert np.allclose(got[item_id], index.get(item_id))
        assert np.isclose(np.linalg.norm(got[item_id]), 1.0)  # stored unit length: dot = cosine
    assert np.allclose(got["c"], [0, 0.5**0.5, 0.5**0.5, 0], atol=1e-6)
    assert index.get_many([]) == {}


def test_get_many_serves_current_vectors_after_updates_and_removals() -> None:
    index = UsearchIndex(dim=2)
    index.upsert(["a", "b"], np.array([[1.0, 0.0], [0.0, 2.0]]))
    first = index.get_many(["a", "b"])  # now cached
    assert np.allclose(first["b"], [0.0, 1.0])
    index.upsert(["b"], np.array([[3.0, 3.0]]))
    index.remove("a")
    again = index.get_many(["a", "b"])
    assert set(again) == {"b"} and np.allclose(again["b"], [2 ** -0.5, 2 ** -0.5])


def test_rows_gather_in_order_with_zero_rows_and_survive_the_cache_starting_over() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(12, 4)).astype(np.float32)
    ids = [f"i{n}" for n in range(12)]
    index = UsearchIndex(dim=4, cached_rows=5)  # smaller than one request: the cache starts over
    index.upsert(ids, vectors)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for ask in (["i3", "nope", "i0", "i3"], ids[:4], ids[4:] + ["i1"], ids[::-1], []):
        got = index.rows(ask)
        assert got.shape == (len(ask), 4)
        for row, item_id in zip(got, ask):
            expected = unit[ids.index(item_id)] if item_id in ids else np.zeros(4)
            assert np.allclose(row, expected, atol=1e-6), item_id
    index.upsert(["i0"], np.array([[0.0, 0.0, 5.0, 0.0]]))
    index.remove("i1")
    assert np.allclose(index.rows(["i0", "i1"]), [[0, 0, 1, 0], [0, 0, 0, 0]])
