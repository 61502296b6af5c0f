"""Fusion: any subset of modalities → one L2-normalised vector of ITEM_EMBEDDING_DIM."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from overdrive.content.fusion import Fusion

RNG = np.random.default_rng(7)
PARTS = {
    "text": [("st:minilm", RNG.standard_normal(384))],
    "image": [("clip:tiny", RNG.standard_normal(24))],
    "video": [("clip:tiny", RNG.standard_normal(24))],
    "audio": [("whisper:tiny", RNG.standard_normal(32))],
}


@pytest.mark.parametrize("dim", [16, 128])
def test_every_subset_fuses_to_a_unit_vector(dim: int) -> None:
    fusion = Fusion(dim=dim)
    for r in range(1, 5):
        for subset in itertools.combinations(PARTS, r):
            vec = fusion.fuse({m: PARTS[m] for m in subset})
            assert vec.shape == (dim,) and vec.dtype == np.float32
            assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5), subset


def test_no_usable_part_gives_zeros() -> None:
    fusion = Fusion(dim=32)
    assert not fusion.fuse({}).any()
    assert not fusion.fuse({"text": [("st:x", np.zeros(384))]}).any()
    assert not Fusion(dim=32, weights={"audio": 0.0}).fuse(PARTS | {"text": [], "image": [], "video": []}).any()


def test_projection_is_deterministic_and_shared_per_space() -> None:
    a, b = Fusion(dim=64, seed=3), Fusion(dim=64, seed=3)
    np.testing.assert_array_equal(a.projection("clip:tiny", 24), b.projection("clip:tiny", 24))
    assert not np.allclose(a.projection("clip:tiny", 24), Fusion(dim=64, seed=4).projection("clip:tiny", 24))
    # image and video share the CLIP space, so the same vector lands on the same direction
    v = RNG.standard_normal(24)
    np.testing.assert_allclose(a.fuse({"image": [("clip:tiny", v)]}), a.fuse({"video": [("clip:tiny", v)]}), atol=1e-6)


def test_projection_preserves_similarity_within_a_space() -> None:
    fusion = Fusion(dim=128)
    base = RNG.standard_normal(384)
    near = base + 0.3 * RNG.standard_normal(384)
    far = RNG.standard_normal(384)
    vecs = fusion.project("st:minilm", np.stack([base, near, far]))
    cos = lambda x, y: float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))  # noqa: E731
    assert abs(cos(vecs[0], vecs[1]) - cos(base, near)) < 0.15
    assert cos(vecs[0], vecs[1]) > cos(vecs[0], vecs[2]) + 0.5
    narrow = fusion.project("clip:tiny", np.stack([PARTS["image"][0][1], PARTS["video"][0][1]]))
    exact = cos(PARTS["image"][0][1], PARTS["video"][0][1])
    assert cos(narrow[0], narrow[1]) == pytest.approx(exact, abs=1e-5)  # narrower than dim: exact


def test_weights_shift_the_fused_vector() -> None:
    parts = {"text": PARTS["text"], "audio": PARTS["audio"]}
    fusion_text = Fusion(dim=64, weights={"text": 1.0, "audio": 0.1})
    fusion_audio = Fusion(dim=64, weights={"text": 0.1, "audio": 1.0})
    text_dir = fusion_text.project("st:minilm", PARTS["text"][0][1])[0]
    assert fusion_text.fuse(parts) @ text_dir > fusion_audio.fuse(parts) @ text_dir + 0.3
    with pytest.raises(ValueError):
        Fusion(dim=64, weights={"text": -1.0})
