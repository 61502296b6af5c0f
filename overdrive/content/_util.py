"""What the encoders share: model-folder fingerprints, row normalisation, the folder-model lifecycle."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from overdrive.content.types import EncoderStatus

log = logging.getLogger(__name__)


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


class FolderModelEncoder(ABC):
    """The lifecycle an encoder shares with its siblings when its model is a transformers folder
    under `MODEL_CACHE_DIR/<folder>`: loaded on first use (thread-safe, once), and degraded to a
    lighter descriptor of `fallback_dim` when the folder is absent or fails to load, with the
    reason kept for `/health/ready`. Subclasses load the folder in `_load_model` (setting
    `_model`, `_dim` and `_name`) and drop what it set in `_unload`."""

    modality: str
    model_kind: str  # as people call it: "CLIP", "Whisper"
    folder: str  # under MODEL_CACHE_DIR
    spaces: tuple[str, str]  # embedding-space prefix with the model, and without it
    fallback_name: str
    fallback_dim: int

    def __init__(self, *, model_cache_dir: Path | None, model_dir: Path | None) -> None:
        self._model_dir = Path(model_dir) if model_dir else (Path(model_cache_dir) / self.folder if model_cache_dir else None)
        self._lock = threading.Lock()
        self._loaded = False
        self._model: Any = None
        self._dim = self.fallback_dim
        self._name = self.fallback_name
        self._reason: str | None = None

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def degraded(self) -> bool:
        return self._loaded and self._model is None

    @property
    def space(self) -> str:
        return f"{self.spaces[0 if self._model is not None else 1]}:{self._name}"

    def load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            if self._model_dir is None or not (self._model_dir / "config.json").is_file():
                self._reason = f"no {self.model_kind} model at {self._model_dir}" if self._model_dir else "no MODEL_CACHE_DIR"
                log.warning("%s encoder degraded: %s", self.modality, self._reason)
            else:
                try:
                    self._load_model(self._model_dir)
                    self._reason = None
                    log.info("%s encoder ready: %s %s (dim %d)", self.modality, self.model_kind, self._name, self._dim)
                except Exception as exc:
                    log.exception("%s model at %s failed to load", self.model_kind, self._model_dir)
                    self._unload()
                    self._model, self._dim, self._name = None, self.fallback_dim, self.fallback_name
                    self._reason = f"{self.model_kind} failed to load: {type(exc).__name__}: {exc}"
            self._loaded = True

    def status(self) -> EncoderStatus:
        return EncoderStatus(self.modality, self.space, self._dim, self._loaded, self.degraded, self._reason)

    @abstractmethod
    def _load_model(self, folder: Path) -> None:
        """Load the folder's model: set `_model`, `_dim` and `_name` (raise if it cannot)."""

    def _unload(self) -> None:
        """Drop whatever a failed `_load_model` set besides `_model`."""
