"""Fuse whatever modalities an item has into one embedding of `ITEM_EMBEDDING_DIM`.

How, and why this way:

1. Each embedding *space* (``minilm:…``, ``clip:…``, ``whisper:…``, a degraded descriptor) gets a
   fixed random projection to `dim`: a Gaussian matrix drawn from a seed derived (CRC32, stable
   across processes and machines) from the space name, input width and `seed`, orthonormalised
   by QR. Fixed means an embedding written today is comparable with one written next month, with
   no fitting step and no state to persist; orthonormal means cosine similarities inside a space
   survive the projection (exactly when the space is narrower than `dim`, approximately —
   Johnson–Lindenstrauss — when it is wider). Encoders that share a space (CLIP image and CLIP
   text) share a projection, so they stay comparable after fusion.
2. Each projected part is L2-normalised, then the parts are averaged with per-modality weights
   (`DEFAULT_WEIGHTS`; a missing modality simply drops out of the mean) and the result is
   L2-normalised. An item without any usable part gets the zero vector.

Different spaces land on unrelated random directions, so two items with no modality in common
score ≈ 0 against each other, never a spurious match.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

DEFAULT_WEIGHTS: dict[str, float] = {"text": 1.0, "image": 1.0, "video": 1.0, "audio": 0.5}


class Fusion:
    """Deterministic projection of per-modality vectors into one item space, then a weighted mean."""

    def __init__(self, *, dim: int, weights: Mapping[str, float] | None = None, seed: int = 0) -> None:
        if dim < 2:
            raise ValueError("dim must be >= 2")
        merged = {**DEFAULT_WEIGHTS, **(weights or {})}
        if any(w < 0 or not np.isfinite(w) for w in merged.values()):
            raise ValueError("fusion weights must be finite and >= 0")
        self.dim = dim
        self._weights = merged
        self._seed = seed
        self._projections: dict[tuple[str, int], np.ndarray] = {}

    def projection(self, space: str, in_dim: int) -> np.ndarray:
        """The fixed (in_dim, dim) matrix for `space`; orthonormal columns or rows."""
        key = (space, in_dim)
        if (mat := self._projections.get(key)) is None:
            seed = zlib.crc32(f"{space}|{in_dim}|{self.dim}|{self._seed}".encode())
            gauss = np.random.default_rng(seed).standard_normal((max(in_dim, self.dim), min(in_dim, self.dim)))
            q, r = np.linalg.qr(gauss)
            q *= np.sign(np.diag(r))  # make the factorisation unique, hence reproducible
            mat = (q if in_dim >= self.dim else q.T).astype(np.float32)  # (in_dim, dim)
            self._projections[key] = mat
        return mat

    def project(self, space: str, vectors: np.ndarray) -> np.ndarray:
        """Rows of `vectors` mapped into the item space and L2-normalised (zero rows stay zero)."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        return _normalise(vectors @ self.projection(space, vectors.shape[1]))

    def fuse(self, parts: Mapping[str, Sequence[tuple[str, np.ndarray]]]) -> np.ndarray:
        """One item's embedding from ``{modality: [(space, vector), …]}``; zeros if no part.

        A modality may bring several parts (a video brings frames and, with CLIP, nothing else;
        a captioned image with CLIP text brings two ``clip`` parts); they share its weight.
        """
        total = np.zeros(self.dim, dtype=np.float32)
        weight_sum = 0.0
        for modality, pieces in parts.items():
            weight = self._weights.get(modality, 1.0)
            usable = [p for p in pieces if np.any(p[1])]
            if weight <= 0 or not usable:
                continue
            for space, vec in usable:
                total += (weight / len(usable)) * self.project(space, vec)[0]
            weight_sum += weight
        if weight_sum == 0:
            return total
        return _normalise(total[None, :])[0]


def _normalise(mat: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    return np.divide(mat, norms, out=np.zeros_like(mat), where=norms > 0).astype(np.float32)
