"""Small helpers shared by the encoders: model-folder fingerprints, row normalisation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def folder_fingerprint(folder: Path) -> str:
    """8 hex digits that change when a model folder's config or weight files change.

    Hashes config.json and the name, size and mtime of every other top-level file: cheap (no
    reading of weights), and enough to keep caches keyed on a model from serving stale features.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode())
        if path.name == "config.json":
            digest.update(path.read_bytes())
        else:
            st = path.stat()
            digest.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:8]


def l2_normalise(mat: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32; all-zero rows stay zero."""
    mat = np.asarray(mat, dtype=np.float32)
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    return np.divide(mat, norms, out=np.zeros_like(mat), where=norms > 0)
